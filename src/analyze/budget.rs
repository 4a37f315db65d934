//! A byte budget shared by every table one analysis keeps (exact distinct sets, per-user
//! counts): whatever the data, the tables of one file never hold more than the budget. Tables
//! take credit in chunks, so that the threads of a parallel analysis rarely touch the shared
//! counter, and give it back when they are dropped or turn into estimates.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Credit a table takes from the budget at a time.
const CHUNK: usize = 64 << 10;

#[derive(Debug)]
pub struct MemoryBudget {
    used: AtomicUsize,
    limit: usize,
    /// Some table could not grow: its figures are estimates (and the report says so).
    exhausted: AtomicBool,
}

impl MemoryBudget {
    pub fn new(limit: usize) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget {
            used: AtomicUsize::new(0),
            limit,
            exhausted: AtomicBool::new(false),
        })
    }

    /// A budget that never runs out (tests of the tables themselves).
    pub fn unlimited() -> Arc<MemoryBudget> {
        MemoryBudget::new(usize::MAX / 2)
    }

    fn try_take(&self, bytes: usize) -> bool {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            if used + bytes > self.limit {
                self.exhausted.store(true, Ordering::Relaxed);
                return false;
            }
            match self.used.compare_exchange_weak(
                used,
                used + bytes,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => used = now,
            }
        }
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Whether some table had to stop growing.
    pub fn exhausted(&self) -> bool {
        self.exhausted.load(Ordering::Relaxed)
    }

    /// Bytes taken now (for tests).
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// One table's account with the budget: what it holds (`taken`) and what of that is still
/// unspent. Everything is given back when the account is dropped.
#[derive(Debug)]
pub struct Account {
    budget: Arc<MemoryBudget>,
    taken: usize,
    spent: usize,
}

impl Account {
    pub fn new(budget: &Arc<MemoryBudget>) -> Account {
        Account {
            budget: Arc::clone(budget),
            taken: 0,
            spent: 0,
        }
    }

    /// Spends `bytes`, taking more credit if needed; `false` when the budget is exhausted.
    #[inline]
    pub fn spend(&mut self, bytes: usize) -> bool {
        if self.spent + bytes <= self.taken {
            self.spent += bytes;
            return true;
        }
        let want = CHUNK.max(bytes);
        if !self.budget.try_take(want) {
            return false;
        }
        self.taken += want;
        self.spent += bytes;
        true
    }

    /// The table was emptied: all its credit goes back.
    pub fn reset(&mut self) {
        self.budget.give_back(self.taken);
        self.taken = 0;
        self.spent = 0;
    }

    pub fn budget(&self) -> &Arc<MemoryBudget> {
        &self.budget
    }
}

impl Clone for Account {
    /// A copy of a table is a new table: it starts with an empty account.
    fn clone(&self) -> Account {
        Account::new(&self.budget)
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        self.budget.give_back(self.taken);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_take_in_chunks_stop_at_the_limit_and_give_back() {
        let budget = MemoryBudget::new(3 * CHUNK);
        let mut a = Account::new(&budget);
        let mut b = Account::new(&budget);
        assert!(a.spend(10));
        assert_eq!(budget.used(), CHUNK);
        assert!(b.spend(2 * CHUNK));
        assert!(!a.spend(CHUNK), "over the limit");
        assert!(budget.exhausted());
        drop(b);
        assert_eq!(budget.used(), CHUNK);
        a.reset();
        assert_eq!(budget.used(), 0);
    }
}
