//! Stream commands: `XADD` (with its trimming options), `XDEL`, `XTRIM`, and `XGROUP CREATE … MKSTREAM`, which
//! may create an empty stream. Other consumer-group commands change no entry and are ignored.

use super::args::{int, is};
use crate::keyspace::Applying;
use crate::windows::{Body, Events, Inexact, Kind, StreamId, StreamWindow, Window};

fn stream(window: &mut Window) -> Result<&mut StreamWindow, Inexact> {
    match &mut window.body {
        Body::Stream(w) => Ok(w),
        _ => Err(Inexact),
    }
}

/// A trimming option: `MAXLEN|MINID [=|~] threshold [LIMIT count]`.
enum Trim {
    MaxLen(u64),
    MinId(StreamId),
    /// `~`: Redis trims "about" there. It propagates the exact result instead, so this is not expected.
    Approximate,
}

/// Reads a trimming option at the front of `args`; returns it and the arguments after it.
fn parse_trim<'a, 'b>(args: &'b [&'a [u8]]) -> Option<(Trim, &'b [&'a [u8]])> {
    let (strategy, mut rest) = args.split_first()?;
    let maxlen = is(strategy, "maxlen");
    if !maxlen && !is(strategy, "minid") {
        return None;
    }
    let mut approximate = false;
    if let Some((op, tail)) = rest.split_first() {
        if *op == b"=" || *op == b"~" {
            approximate = *op == b"~";
            rest = tail;
        }
    }
    let (threshold, mut rest) = rest.split_first()?;
    let trim = if approximate {
        Trim::Approximate
    } else if maxlen {
        Trim::MaxLen(int(threshold).filter(|&n| n >= 0)? as u64)
    } else {
        Trim::MinId(StreamId::parse(threshold)?)
    };
    if let Some((limit, tail)) = rest.split_first() {
        if is(limit, "limit") {
            rest = tail.get(1..)?;
        }
    }
    Some((trim, rest))
}

fn apply_trim(w: &mut StreamWindow, trim: &Trim, events: &mut Events<'_>) -> Result<(), Inexact> {
    match *trim {
        Trim::MaxLen(n) => w.trim_maxlen(n, events),
        Trim::MinId(id) => w.trim_minid(id, events),
        Trim::Approximate => return Err(Inexact),
    }
    Ok(())
}

/// `XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] id field value …`.
pub(super) fn xadd(applying: &mut Applying<'_>, args: &[&[u8]]) {
    let mut rest = &args[2..];
    let mut trim = None;
    loop {
        match rest.first() {
            Some(a) if is(a, "nomkstream") => rest = &rest[1..],
            Some(a) if is(a, "maxlen") || is(a, "minid") => match parse_trim(rest) {
                Some((t, tail)) => {
                    trim = Some(t);
                    rest = tail;
                }
                None => return applying.bad_arguments("XADD", &args[1..2]),
            },
            _ => break,
        }
    }
    let Some((id, fields)) = rest.split_first() else {
        return applying.bad_arguments("XADD", &args[1..2]);
    };
    if fields.is_empty() || fields.len() % 2 != 0 {
        return applying.bad_arguments("XADD", &args[1..2]);
    }
    // `*` or `<ms>-*`: Redis propagates the id it chose, so these are not expected; the entry is unknown.
    let id = StreamId::parse(id);
    applying.update(args[1], Kind::Stream, true, |window, events| {
        let w = stream(window)?;
        let id = id.ok_or(Inexact)?;
        w.add(id, fields.iter().map(|f| f.to_vec()).collect(), events);
        match &trim {
            Some(trim) => apply_trim(w, trim, events),
            None => Ok(()),
        }
    });
}

/// `XDEL key id …`.
pub(super) fn xdel(applying: &mut Applying<'_>, args: &[&[u8]]) {
    let ids: Option<Vec<StreamId>> = args[2..].iter().map(|a| StreamId::parse(a)).collect();
    let Some(ids) = ids else {
        return applying.bad_arguments("XDEL", &args[1..2]);
    };
    applying.update(args[1], Kind::Stream, false, |window, events| {
        let w = stream(window)?;
        for id in ids {
            w.delete(id, events);
        }
        Ok(())
    });
}

/// `XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]`. `MAXLEN 0` leaves an empty stream, whatever it held:
/// that is how a snapshot says a key is an empty stream (Redis keeps a stream whose entries are all gone).
pub(super) fn xtrim(applying: &mut Applying<'_>, args: &[&[u8]]) {
    let Some((trim, _)) = parse_trim(&args[2..]) else {
        return applying.bad_arguments("XTRIM", &args[1..2]);
    };
    let empties = matches!(trim, Trim::MaxLen(0));
    applying.update(args[1], Kind::Stream, empties, |window, events| {
        apply_trim(stream(window)?, &trim, events)
    });
}

/// `XGROUP CREATE key group id MKSTREAM …` creates the stream, empty, if it did not exist; any other `XGROUP`
/// changes no entry.
pub(super) fn xgroup(applying: &mut Applying<'_>, args: &[&[u8]]) {
    let creates_stream = is(args[1], "create") && args.iter().skip(5).any(|a| is(a, "mkstream"));
    if let (true, Some(&key)) = (creates_stream, args.get(2)) {
        applying.update(key, Kind::Stream, true, |window, _| {
            stream(window).map(drop)
        });
    }
}
