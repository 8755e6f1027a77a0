//! Requests a page sent to the relay and waiting for its answer ([`Pending`]), by the ids they were sent with.
//!
//! The ids are the numbers 1, 2, 3… in the order the requests were filed, so the request of id `n` sits at a known
//! place in one `Vec`, without a hash table: the relay answers mostly in order, a settled slot is emptied, and the
//! empty slots at the front leave. An id is never given twice, so an answer to a request of an earlier socket
//! (dropped with [`Pending::take_all`]) finds nothing. A request left unanswered keeps the slots after it, so at most
//! [`MAX_WAITING`] ids are kept from the oldest waiting one on: past that, [`Pending::overdue`] names the oldest,
//! unanswered, for the caller to take out and fail.

/// Ids kept from the oldest request still waiting to the newest: a relay that never answers one request costs a page
/// at most this many slots, not one per request sent since.
pub const MAX_WAITING: usize = 4096;

/// Requests waiting for an answer, each with what settles it (`T`: a promise's callbacks in the browser).
#[derive(Debug)]
pub struct Pending<T> {
    /// Ids whose slots left the front of `waiting`: `waiting[i]` is the request of id `gone + i + 1`.
    gone: u64,
    /// `None` where the request was settled, until the slots before it are too.
    waiting: Vec<Option<T>>,
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Pending {
            gone: 0,
            waiting: Vec::new(),
        }
    }
}

impl<T> Pending<T> {
    /// Files a request; returns its id, as the text the relay echoes.
    pub fn file(&mut self, request: T) -> String {
        self.waiting.push(Some(request));
        (self.gone + self.waiting.len() as u64).to_string()
    }

    /// The id of the oldest request still waiting when [`MAX_WAITING`] ids are kept from it on: the caller takes
    /// it out and fails it (no answer came for it) before filing another.
    pub fn overdue(&self) -> Option<String> {
        (self.waiting.len() >= MAX_WAITING).then(|| (self.gone + 1).to_string())
    }

    /// Empties the settled slots at the front.
    fn drain_settled(&mut self) {
        let settled = self
            .waiting
            .iter()
            .take_while(|slot| slot.is_none())
            .count();
        self.waiting.drain(..settled);
        self.gone += settled as u64;
    }

    /// The request of id `id`, taken out: `None` for an id this never gave (or not as it gave it: `07`, `+7`), or
    /// one already taken.
    pub fn take(&mut self, id: &str) -> Option<T> {
        if id.starts_with('0') || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let index = id.parse::<u64>().ok()?.checked_sub(self.gone + 1)?;
        let taken = self.waiting.get_mut(usize::try_from(index).ok()?)?.take();
        self.drain_settled();
        taken
    }

    /// Every request still waiting, in the order filed, taken out.
    pub fn take_all(&mut self) -> impl Iterator<Item = T> + '_ {
        self.gone += self.waiting.len() as u64;
        self.waiting.drain(..).flatten()
    }

    /// How many requests wait.
    pub fn len(&self) -> usize {
        self.waiting.iter().filter(|slot| slot.is_some()).count()
    }

    /// Whether no request waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_settle_in_any_order_by_the_ids_given() {
        let mut pending = Pending::default();
        let ids: Vec<String> = (0..5).map(|n| pending.file(n)).collect();
        assert_eq!(ids, ["1", "2", "3", "4", "5"]);
        assert_eq!(pending.take("2"), Some(1));
        assert_eq!(pending.take("2"), None, "taken once");
        assert_eq!(pending.take("1"), Some(0));
        assert_eq!(pending.len(), 3);
        assert_eq!(pending.take("5"), Some(4));
        assert_eq!(pending.file(5), "6", "ids go on after the ones settled");
        assert_eq!(pending.take("3"), Some(2));
        assert_eq!(pending.take("4"), Some(3));
        assert_eq!(pending.take("6"), Some(5));
        assert!(pending.is_empty());
        assert_eq!(pending.file(6), "7");
    }

    #[test]
    fn ids_it_never_gave_find_nothing() {
        let mut pending = Pending::default();
        for n in 0..3 {
            pending.file(n);
        }
        for id in [
            "",
            "0",
            "01",
            "+2",
            "-1",
            "2 ",
            "4",
            "18446744073709551616",
            "x",
        ] {
            assert_eq!(pending.take(id), None, "{id:?}");
        }
        assert_eq!(pending.len(), 3);
    }

    #[test]
    fn an_answer_for_a_request_taken_with_all_finds_nothing() {
        let mut pending = Pending::default();
        pending.file('a');
        pending.file('b');
        assert_eq!(pending.take("1"), Some('a'));
        assert_eq!(pending.take_all().collect::<Vec<_>>(), ['b']);
        assert_eq!(pending.take("2"), None);
        assert_eq!(
            pending.file('c'),
            "3",
            "a new socket's requests get new ids"
        );
        assert_eq!(pending.take("3"), Some('c'));
    }

    #[test]
    fn a_request_never_answered_keeps_at_most_max_waiting_slots() {
        let mut pending = Pending::default();
        assert_eq!(pending.file(0), "1");
        // Every later request is answered, the first never is.
        for n in 1..MAX_WAITING {
            assert_eq!(pending.overdue(), None);
            let id = pending.file(n);
            assert_eq!(pending.take(&id), Some(n));
        }
        assert_eq!(pending.waiting.len(), MAX_WAITING);
        let overdue = pending.overdue().expect("the oldest is overdue");
        assert_eq!(overdue, "1");
        assert_eq!(
            pending.take(&overdue),
            Some(0),
            "the oldest, unanswered, is taken out"
        );
        assert!(
            pending.waiting.is_empty(),
            "the slots answered behind it left with it"
        );
        assert_eq!(pending.overdue(), None);
        let id = pending.file(MAX_WAITING);
        assert_eq!(pending.take(&id), Some(MAX_WAITING));
        assert!(pending.is_empty());
    }
}
