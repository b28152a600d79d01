//! The capacity board: how many request threads each daemon process of a group has free now.
//!
//! The rule that keeps requests from queueing behind a busy process: an Apache child reuses a
//! pooled connection (which is tied to one daemon process) only after reserving one of that
//! process's free threads here; when it cannot, it opens a new connection, which waits in the
//! group's listening socket until a free thread of *any* process accepts it. So a request is
//! only ever queued where no thread of the group is free.
//!
//! The board is a small array of atomics in memory shared by the Apache parent, its children
//! and the daemon processes (made in the parent before it forks them). Per slot: the pid of the
//! process that holds it (0: free) and its free thread count. Accounting:
//! - a process claims a slot when it is ready, with `threads` free;
//! - a polling thread takes one (`try_take`) before it accepts a new connection, and leaves the
//!   listening socket alone while none is free; every thread gives one back (`give`) after
//!   each request;
//! - an Apache child reserves one (`reserve`) before each request on a pooled connection, so
//!   the thread that serves it takes none;
//! - a draining process sets its count far below zero so nothing reserves it any more; the
//!   manager clears the slot of a process that is gone.

use std::sync::atomic::{AtomicI32, Ordering};

/// A free count no number of `give`s brings back above zero.
const CLOSED: i32 = i32::MIN / 2;

/// What reserving a thread of a process found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// One thread of the process is now promised to the caller's request.
    Reserved,
    /// Every thread of the process is busy (or it is draining).
    Busy,
    /// The process is not on the board (gone, or not ready yet).
    Unknown,
}

/// The board over its cells: `2 * slots` integers, (pid, free) per slot.
pub struct Board<C: AsRef<[AtomicI32]>> {
    cells: C,
}

impl<C: AsRef<[AtomicI32]>> std::fmt::Debug for Board<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Board({:?})", self.snapshot())
    }
}

impl AsRef<[AtomicI32]> for crate::sys::shm::SharedI32s {
    fn as_ref(&self) -> &[AtomicI32] {
        self.as_slice()
    }
}

/// A board in memory shared with every process forked after it is made.
pub fn shared(processes: u32) -> std::io::Result<Board<crate::sys::shm::SharedI32s>> {
    Ok(Board::new(crate::sys::shm::SharedI32s::new(cells_for(processes))?))
}

impl<C: AsRef<[AtomicI32]>> Board<C> {
    pub fn new(cells: C) -> Self {
        Board { cells }
    }

    fn slots(&self) -> impl Iterator<Item = (usize, &AtomicI32, &AtomicI32)> {
        self.cells.as_ref().chunks_exact(2).enumerate().map(|(i, c)| (i, &c[0], &c[1]))
    }

    fn free_of(&self, slot: usize) -> Option<&AtomicI32> {
        self.cells.as_ref().get(2 * slot + 1)
    }

    /// Takes a free slot for `pid` with `threads` free threads. `None` if the board is full.
    pub fn claim(&self, pid: i32, threads: i32) -> Option<usize> {
        for (i, p, free) in self.slots() {
            // A free slot's count is 0 or CLOSED (never reservable) until its owner sets it.
            if p.load(Ordering::Acquire) == 0 {
                if p.compare_exchange(0, pid, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                    free.store(threads, Ordering::Release);
                    return Some(i);
                }
            }
        }
        None
    }

    /// Frees every slot `pid` holds (the process is gone).
    pub fn release(&self, pid: i32) {
        for (_, p, free) in self.slots() {
            if p.load(Ordering::Acquire) == pid {
                free.store(CLOSED, Ordering::Release);
                let _ = p.compare_exchange(pid, 0, Ordering::AcqRel, Ordering::Acquire);
            }
        }
    }

    /// The process stops taking requests: nothing reserves it any more.
    pub fn close(&self, slot: usize) {
        if let Some(f) = self.free_of(slot) {
            f.store(CLOSED, Ordering::Release);
        }
    }

    /// Gives back a thread reserved on process `pid` for a request that was never sent.
    pub fn give_pid(&self, pid: i32) {
        if let Some((_, _, free)) = self.slots().find(|(_, p, _)| p.load(Ordering::Acquire) == pid) {
            free.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Sets the slot's free count to `threads` unless the process is closed (draining): the
    /// process found itself idle, so no thread is busy or promised whatever the count says (a
    /// reservation whose request never arrived would otherwise be lost for good).
    pub fn reset(&self, slot: usize, threads: i32) {
        if let Some(f) = self.free_of(slot) {
            let mut now = f.load(Ordering::Acquire);
            while now > CLOSED / 2 && now != threads {
                match f.compare_exchange_weak(now, threads, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => break,
                    Err(v) => now = v,
                }
            }
        }
    }

    /// A thread of the process takes one of its free threads for a new connection, if one is
    /// free (none may be: Apache children reserved them for requests already on their way).
    pub fn try_take(&self, slot: usize) -> bool {
        self.free_of(slot).is_some_and(take_one)
    }

    /// How many threads of the slot are free (not serving, not reserved).
    pub fn free(&self, slot: usize) -> i32 {
        self.free_of(slot).map_or(0, |f| f.load(Ordering::Acquire))
    }

    /// A thread finished a request.
    pub fn give(&self, slot: usize) {
        if let Some(f) = self.free_of(slot) {
            f.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Reserves one free thread of process `pid` for a request on a pooled connection.
    pub fn reserve(&self, pid: i32) -> Reservation {
        match self.slots().find(|(_, p, _)| p.load(Ordering::Acquire) == pid) {
            None => Reservation::Unknown,
            Some((_, _, free)) if take_one(free) => Reservation::Reserved,
            Some(_) => Reservation::Busy,
        }
    }

    /// Free threads per claimed slot, as (pid, free): for logs and tests.
    pub fn snapshot(&self) -> Vec<(i32, i32)> {
        self.slots().map(|(_, p, f)| (p.load(Ordering::Acquire), f.load(Ordering::Acquire))).filter(|(p, _)| *p != 0).collect()
    }
}

/// Decrements a free count that is above zero; false if it is not.
fn take_one(free: &AtomicI32) -> bool {
    let mut f = free.load(Ordering::Acquire);
    loop {
        if f <= 0 {
            return false;
        }
        match free.compare_exchange_weak(f, f - 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return true,
            Err(now) => f = now,
        }
    }
}

/// Slots for a group of `processes`: room for each process and its replacement starting while
/// it drains.
pub fn cells_for(processes: u32) -> usize {
    2 * (2 * processes as usize + 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(processes: u32) -> Board<Vec<AtomicI32>> {
        Board::new((0..cells_for(processes)).map(|_| AtomicI32::new(0)).collect())
    }

    #[test]
    fn reservations_follow_free_threads() {
        let b = board(2);
        let a = b.claim(100, 2).unwrap();
        let c = b.claim(200, 1).unwrap();
        assert_ne!(a, c);
        assert_eq!(b.reserve(100), Reservation::Reserved);
        assert_eq!(b.reserve(100), Reservation::Reserved);
        assert_eq!(b.reserve(100), Reservation::Busy, "both threads promised");
        assert_eq!(b.reserve(300), Reservation::Unknown);
        b.give(a);
        assert_eq!(b.reserve(100), Reservation::Reserved, "a thread came back");
        // A thread taking a new connection takes a free thread itself.
        assert!(b.try_take(c));
        assert!(!b.try_take(c), "none left");
        assert_eq!(b.reserve(200), Reservation::Busy);
        b.give(c);
        assert_eq!(b.free(c), 1);
        // A reservation whose request never went out is given back by pid.
        assert_eq!(b.reserve(200), Reservation::Reserved);
        b.give_pid(200);
        assert_eq!(b.free(c), 1);
        // An idle process resets a count that lost a thread; a closed one stays closed.
        b.reserve(200);
        b.reset(c, 1);
        assert_eq!(b.free(c), 1);
        b.close(c);
        b.reset(c, 1);
        assert_eq!(b.reserve(200), Reservation::Busy);
        assert_eq!(b.snapshot(), vec![(100, 0), (200, CLOSED)]);
    }

    #[test]
    fn draining_and_gone_processes_are_not_reserved() {
        let b = board(1);
        let a = b.claim(100, 4).unwrap();
        b.close(a);
        for _ in 0..10 {
            b.give(a);
        }
        assert_eq!(b.reserve(100), Reservation::Busy, "a draining process stays closed");
        b.release(100);
        assert_eq!(b.reserve(100), Reservation::Unknown);
        assert_eq!(b.claim(101, 4), Some(a), "the slot is reused");
    }

    #[test]
    fn a_full_board_refuses_more_processes() {
        let b = board(1);
        for pid in 1..=4 {
            assert!(b.claim(pid, 1).is_some(), "{pid}");
        }
        assert_eq!(b.claim(5, 1), None);
        b.release(2);
        assert!(b.claim(5, 1).is_some());
    }

    #[test]
    fn concurrent_reservations_never_overcommit() {
        let b = std::sync::Arc::new(board(1));
        b.claim(7, 100).unwrap();
        let won = std::sync::Arc::new(AtomicI32::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (b, won) = (b.clone(), won.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        if b.reserve(7) == Reservation::Reserved {
                            won.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(won.load(Ordering::Relaxed), 100);
        assert_eq!(b.snapshot(), vec![(7, 0)]);
    }
}
