//! The sessions each token subject (`sub`) holds at once, for `--max-sessions-per-subject`: one user cannot
//! multiply what a session may cost by opening more of them, from however many addresses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Sessions open per subject.
#[derive(Debug, Default)]
pub struct SubjectSessions {
    open: Mutex<HashMap<String, u64>>,
}

/// One session's place in its subject's count, given back when dropped.
#[derive(Debug)]
pub struct SubjectSlot {
    sessions: Arc<SubjectSessions>,
    subject: String,
}

impl SubjectSessions {
    /// A slot for one more session of `subject` if it holds fewer than `limit`; else how many it holds.
    pub fn admit(self: &Arc<Self>, subject: &str, limit: u64) -> Result<SubjectSlot, u64> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let held = open.entry(subject.to_string()).or_default();
        if *held >= limit {
            let held = *held;
            if held == 0 {
                open.remove(subject);
            }
            return Err(held);
        }
        *held += 1;
        Ok(SubjectSlot {
            sessions: self.clone(),
            subject: subject.to_string(),
        })
    }

    /// Sessions `subject` holds now.
    pub fn held(&self, subject: &str) -> u64 {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(subject).copied().unwrap_or(0)
    }
}

impl Drop for SubjectSlot {
    fn drop(&mut self) {
        let mut open = self.sessions.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = open.get_mut(&self.subject) {
            *held -= 1;
            if *held == 0 {
                open.remove(&self.subject);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_subject_holds_at_most_its_limit_and_no_entry_outlives_its_sessions() {
        let sessions = Arc::new(SubjectSessions::default());
        let first = sessions.admit("alice", 2).unwrap();
        let second = sessions.admit("alice", 2).unwrap();
        assert_eq!(sessions.admit("alice", 2).unwrap_err(), 2);
        let bob = sessions.admit("bob", 2).unwrap();
        drop(first);
        let third = sessions.admit("alice", 2).unwrap();
        assert_eq!(sessions.admit("carol", 0).unwrap_err(), 0);
        drop((second, third, bob));
        assert!(sessions.open.lock().unwrap().is_empty());
    }
}
