//! The process's limit on open files. Every browser session is a socket, so the relay raises its soft
//! `RLIMIT_NOFILE` to the hard limit at startup: distributions often start services at a soft 1024, far below
//! the 10,000 sessions `--max-sessions` allows.
//!
//! Past the limit, `accept` fails with `EMFILE`; axum's accept loop logs that (`accept error: Too many open files`)
//! and waits a second before accepting again, so the relay keeps serving the sockets it has instead of spinning.

/// The soft limit before and after raising it to the hard limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raised {
    pub before: u64,
    pub after: u64,
}

/// Raises this process's soft limit on open files to its hard limit.
pub fn raise_to_hard_limit() -> std::io::Result<Raised> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read or write the struct passed to them.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(Raised {
        before,
        after: limit.rlim_cur,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        let raised = raise_to_hard_limit().unwrap();
        assert!(raised.after >= raised.before);
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct passed to it.
        let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        assert_eq!(read, 0);
        assert_eq!(
            (limit.rlim_cur, limit.rlim_max),
            (raised.after, raised.after)
        );
        assert_eq!(
            raised_again(),
            raised.after,
            "a second call changes nothing"
        );
    }

    fn raised_again() -> u64 {
        let again = raise_to_hard_limit().unwrap();
        assert_eq!(again.before, again.after);
        again.after
    }
}
