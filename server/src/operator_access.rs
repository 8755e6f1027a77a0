//! Who may read what names keys of every tenant: the operators' routes (`/profile`, `/verify`). Apart from
//! `http` so that the routes' own modules and the router import it without importing each other.

use axum::http::{HeaderMap, StatusCode};

use crate::access::presented_token;
use crate::relay::Relay;

/// Whether a request may read what names keys of every tenant (`/profile`, `/verify`): it passes the sessions'
/// token and Origin checks and, under signed tokens, presents one that may read all of `--allow` (read pattern
/// `*`): a tenant's token would otherwise learn the other tenants' key names. `what` names the route in refusals.
pub fn operator_access(
    relay: &Relay,
    headers: &HeaderMap,
    token: Option<&str>,
    what: &str,
) -> Result<(), (StatusCode, String)> {
    relay.access.check(headers, token, 0)?;
    if let Some(tokens) = &relay.tokens {
        let presented = presented_token(headers, token).unwrap_or("");
        match tokens.verify(presented) {
            Ok(grant) if grant.reads_everything() => {}
            Ok(_) => {
                return Err((
                    StatusCode::FORBIDDEN,
                    format!("{what} names keys of every tenant: it needs a token whose read patterns include `*`\n"),
                ))
            }
            Err(err) => return Err((StatusCode::UNAUTHORIZED, format!("{err}\n"))),
        }
    }
    Ok(())
}
