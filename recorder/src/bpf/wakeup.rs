//! Sleeping until a ring needs its reader.
//!
//! The kernel wakes the reader only when a ring's unread data crosses a
//! threshold (`spliff_wakeup_on_crossing` in bpf/common.h); otherwise the
//! reader drains on a timer. The TLS ring is watched level-triggered, as a
//! plain poll(2) would: after a drain, records written since make the wait
//! return at once. The packet ring is watched edge-triggered: it fills all
//! the time under traffic, and a level-triggered wait would return for every
//! few packets instead of letting them collect until the timer. Only the
//! kernel's forced wakeup (the crossing) ends the wait early for it.

use std::{
    io,
    os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
    time::Duration,
};

/// An epoll instance over the rings.
#[derive(Debug)]
pub(super) struct Wakeup {
    epoll: OwnedFd,
}

impl Wakeup {
    /// Watches `ring` level-triggered.
    pub(super) fn new(ring: BorrowedFd<'_>) -> io::Result<Self> {
        // SAFETY: epoll_create1 has no memory preconditions.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a new descriptor nothing else owns.
        let wakeup = Self {
            epoll: unsafe { OwnedFd::from_raw_fd(fd) },
        };
        wakeup.add(ring, libc::EPOLLIN as u32)?;
        Ok(wakeup)
    }

    /// Also wakes for `ring`, but only when the kernel wakes its readers
    /// (edge-triggered). The ring's file stays watched as long as it is
    /// open; closing it removes it.
    pub(super) fn add_edge_triggered(&self, ring: BorrowedFd<'_>) -> io::Result<()> {
        self.add(ring, (libc::EPOLLIN | libc::EPOLLET) as u32)
    }

    fn add(&self, ring: BorrowedFd<'_>, events: u32) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events,
            u64: ring.as_raw_fd() as u64,
        };
        // SAFETY: both descriptors are open; the kernel copies `event`.
        let done = unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                ring.as_raw_fd(),
                &mut event,
            )
        };
        if done < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout` for a ring to need reading; `false` on timeout
    /// or a signal.
    pub(super) fn wait(&self, timeout: Duration) -> io::Result<bool> {
        let mut ready = [libc::epoll_event { events: 0, u64: 0 }; 2];
        // Rounded up so a sub-millisecond timeout still waits rather than spins.
        let millis = i32::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        // SAFETY: the buffer holds `ready.len()` events.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                ready.as_mut_ptr(),
                ready.len() as i32,
                millis,
            )
        };
        if n >= 0 {
            return Ok(n > 0);
        }
        let error = io::Error::last_os_error();
        if error.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        Err(error)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        fs::File,
        io::Write as _,
        os::fd::{AsFd as _, FromRawFd as _},
    };

    use super::*;

    /// A pipe's (read end, write end).
    fn pipe() -> (File, File) {
        let mut fds = [0; 2];
        // SAFETY: pipe(2) fills both descriptors on success.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both are new descriptors owned by nothing else.
        unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
    }

    #[test]
    fn the_level_triggered_ring_wakes_while_it_has_data() {
        let (read, mut write) = pipe();
        let wakeup = Wakeup::new(read.as_fd()).unwrap();
        assert!(!wakeup.wait(Duration::from_millis(1)).unwrap());
        write.write_all(b"x").unwrap();
        // Not drained: every wait returns at once, as poll(2) did.
        assert!(wakeup.wait(Duration::from_secs(5)).unwrap());
        assert!(wakeup.wait(Duration::from_secs(5)).unwrap());
    }

    #[test]
    fn the_edge_triggered_ring_wakes_once_per_wakeup_not_while_it_has_data() {
        let (tls, _tls_write) = pipe();
        let (packets, mut packets_write) = pipe();
        let wakeup = Wakeup::new(tls.as_fd()).unwrap();
        wakeup.add_edge_triggered(packets.as_fd()).unwrap();
        assert!(!wakeup.wait(Duration::from_millis(1)).unwrap());
        packets_write.write_all(b"x").unwrap();
        assert!(wakeup.wait(Duration::from_secs(5)).unwrap());
        // Still unread, but no new wakeup: the wait runs to its timeout, so
        // a ring that fills under steady traffic does not spin the reader.
        assert!(!wakeup.wait(Duration::from_millis(20)).unwrap());
        packets_write.write_all(b"y").unwrap();
        assert!(wakeup.wait(Duration::from_secs(5)).unwrap());
    }
}
