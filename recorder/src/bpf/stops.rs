//! The ledger of processes stopped at exec: by the kernel (`--comm` per
//! process) or by the recorder (a large program held until searched),
//! shared by the recorder and its stop watchdog.
//!
//! The exec program records every `SIGSTOP` it sends in `spliff_stopped` and
//! stops nothing unless `spliff_stop_armed` is set (see
//! `bpf/process/exec.h`). The recorder removes an entry once it has sent
//! `SIGCONT`; the watchdog, a separate process holding its own descriptors
//! of both maps, disarms and continues whatever is left once the recorder is
//! gone, however it died.

use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};

use aya::{
    Ebpf,
    maps::{Array, HashMap as BpfHashMap, IterableMap as _, Map, MapData, MapError},
};
use spliff_recorder_ebpf::{abi, names};

use super::BpfError;

/// [`abi::StopKey`] as a map key: aya reads and writes keys as plain bytes.
#[derive(Clone, Copy, Debug)]
#[repr(transparent)]
struct Key(abi::StopKey);

// SAFETY: `StopKey` is `repr(C)` with integer fields only and no padding (its
// layout test checks it against the C header), so any bytes are a valid value.
unsafe impl aya::Pod for Key {}

/// One stop recorded by the kernel and not yet continued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stop {
    /// The stopped process (tgid).
    pub pid: u32,
    /// When the kernel stopped it: the exec event's
    /// [`ProcessExec::ts_boot_ns`](super::ProcessExec::ts_boot_ns).
    pub ts_boot_ns: u64,
}

/// Handles of `spliff_stopped` and `spliff_stop_armed` with descriptors of
/// their own, so they live as long as their holder, not the pipeline.
pub struct StopMaps {
    stopped: BpfHashMap<MapData, Key, u8>,
    armed: Array<MapData, u32>,
}

impl std::fmt::Debug for StopMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopMaps")
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}

impl StopMaps {
    /// Opens the maps from descriptors (duplicated from a pipeline, or
    /// inherited by the watchdog); fails if they are not the expected maps.
    pub fn from_fds(stopped: OwnedFd, armed: OwnedFd) -> Result<Self, BpfError> {
        let open = |fd, name| {
            MapData::from_fd(fd)
                .and_then(Map::from_map_data)
                .map_err(|source| BpfError::Map { map: name, source })
        };
        let stopped = open(stopped, names::STOPPED_MAP)?;
        let armed = open(armed, names::STOP_ARMED_MAP)?;
        Ok(Self {
            stopped: BpfHashMap::try_from(stopped).map_err(map_error(names::STOPPED_MAP))?,
            armed: Array::try_from(armed).map_err(map_error(names::STOP_ARMED_MAP))?,
        })
    }

    /// Duplicates the loaded maps' descriptors.
    pub(super) fn duplicate(ebpf: &Ebpf) -> Result<Self, BpfError> {
        let map = |name| {
            ebpf.map(name)
                .ok_or(BpfError::MissingFromObject { kind: "map", name })
        };
        let stopped = BpfHashMap::<_, Key, u8>::try_from(map(names::STOPPED_MAP)?)
            .map_err(map_error(names::STOPPED_MAP))?;
        let armed = Array::<_, u32>::try_from(map(names::STOP_ARMED_MAP)?)
            .map_err(map_error(names::STOP_ARMED_MAP))?;
        Self::from_fds(
            dup(stopped.map(), names::STOPPED_MAP)?,
            dup(armed.map(), names::STOP_ARMED_MAP)?,
        )
    }

    /// The descriptors of (`spliff_stopped`, `spliff_stop_armed`), to hand
    /// to the watchdog.
    pub fn fds(&self) -> (BorrowedFd<'_>, BorrowedFd<'_>) {
        (
            self.stopped.map().fd().as_fd(),
            self.armed.map().fd().as_fd(),
        )
    }

    /// Allows (`true`) or forbids the kernel to stop processes from now on.
    pub fn set_armed(&mut self, armed: bool) -> Result<(), BpfError> {
        self.armed
            .set(0, u32::from(armed), 0)
            .map_err(map_error(names::STOP_ARMED_MAP))
    }

    /// Whether the kernel may stop processes.
    pub fn armed(&self) -> Result<bool, BpfError> {
        let value = self
            .armed
            .get(&0, 0)
            .map_err(map_error(names::STOP_ARMED_MAP))?;
        Ok(value != 0)
    }

    /// Stops the kernel recorded and nobody has continued yet.
    pub fn pending(&self) -> Vec<Stop> {
        self.stopped
            .keys()
            .filter_map(Result::ok)
            .map(|Key(key)| Stop {
                pid: key.pid,
                ts_boot_ns: key.ts_ns,
            })
            .collect()
    }

    /// Enters a stop the recorder itself makes (a process held at exec
    /// until searched), so the watchdog continues it too.
    pub fn record(&mut self, stop: Stop) -> Result<(), BpfError> {
        let key = Key(abi::StopKey {
            pid: stop.pid,
            reserved32: 0,
            ts_ns: stop.ts_boot_ns,
        });
        self.stopped
            .insert(key, 1, 0)
            .map_err(map_error(names::STOPPED_MAP))
    }

    /// Removes `stop` once it was continued. Already gone is no error: the
    /// other side (recorder or watchdog) may have removed it.
    pub fn forget(&mut self, stop: Stop) -> Result<(), BpfError> {
        let key = Key(abi::StopKey {
            pid: stop.pid,
            reserved32: 0,
            ts_ns: stop.ts_boot_ns,
        });
        match self.stopped.remove(&key) {
            Ok(()) => Ok(()),
            Err(MapError::SyscallError(error))
                if error.io_error.raw_os_error() == Some(libc::ENOENT) =>
            {
                Ok(())
            }
            Err(source) => Err(BpfError::Map {
                map: names::STOPPED_MAP,
                source,
            }),
        }
    }
}

/// A close-on-exec duplicate of `data`'s descriptor.
fn dup(data: &MapData, map: &'static str) -> Result<OwnedFd, BpfError> {
    data.fd()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|source| BpfError::MapFd { map, source })
}

fn map_error(map: &'static str) -> impl Fn(MapError) -> BpfError {
    move |source| BpfError::Map { map, source }
}
