//! Loading spliff's kernel programs and reading their events (Linux only).
//!
//! [`BpfPipeline::load`] takes the BPF object embedded by
//! `spliff-recorder-ebpf`, fits it to the running kernel with CO-RE (BTF from
//! `/sys/kernel/btf/vmlinux`), sets its `.rodata` settings, attaches its
//! programs and opens the event ring buffer. [`BpfPipeline::read_events`]
//! then yields validated [`Event`]s. Dropping the pipeline detaches
//! everything.

#![warn(missing_docs)]

mod error;
mod event;
mod packet_hooks;
mod stops;
mod unix_socket;
mod wakeup;

use std::{
    fmt,
    num::NonZeroU32,
    os::fd::{AsFd as _, BorrowedFd},
    time::Duration,
};

use std::path::Path;

use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf},
    programs::{
        CgroupAttachMode, Program, ProgramError, RawTracePoint, SockOps, UProbe,
        uprobe::{UProbeAttachLocation, UProbeLinkId, UProbeScope},
    },
};
use spliff_recorder_ebpf::{
    BPF_OBJECT,
    abi::{COMM_LEN, Stat},
    names,
};

pub use error::{BoxError, BpfError, Privileges};
pub use event::{
    DecodeError, Event, ProcessExec, SocketOp, TcpSocket, TlsClose, TlsConn, TlsData, TlsDirection,
    TlsHandshake, TlsLoss, TlsLossCause, TlsString, TlsStringKind, decode,
};

pub use stops::{Stop, StopMaps};
pub use unix_socket::{UnixConn, UnixSelection};

pub use packet_hooks::{
    CaptureSettings, MAX_PACKETS_PER_DRAIN, PacketCapture, PacketCounters, PacketHook,
    PacketHookError, PacketLink, PacketRing, TcAttachMode, XdpAttachMode, decode_packet,
};

/// At most this many records per [`BpfPipeline::read_events`] call, so a
/// busy kernel cannot keep the caller in the loop forever.
const MAX_RECORDS_PER_READ: usize = 4096;

/// How to load the kernel programs.
#[derive(Clone, Copy, Debug)]
pub struct PipelineOptions<'a> {
    /// The BPF ELF object; [`BPF_OBJECT`] (embedded at build time) unless a
    /// test wants another build of it. Any alignment is accepted.
    pub object: &'a [u8],
    /// Record only this process (for exec events: it and its direct
    /// children). `None` records every process.
    pub target_tgid: Option<NonZeroU32>,
    /// Size of the event ring buffer in bytes: a power of two and a multiple
    /// of the page size. `None` keeps the object's default
    /// ([`spliff_recorder_ebpf::abi::RINGBUF_DEFAULT_BYTES`]).
    pub ring_buffer_bytes: Option<u32>,
    /// Restrict TLS probes (and exec events) to processes added with
    /// [`BpfPipeline::track_process`] (plus their future children) and comms
    /// added with [`BpfPipeline::filter_comm`]. `false` records everything.
    pub filter_enabled: bool,
    /// For `--comm` with per-process uprobes: the kernel stops (`SIGSTOP`)
    /// every process that execs into a comm added with
    /// [`BpfPipeline::filter_comm`] and flags its [`ProcessExec`] event
    /// `stopped`; the reader must attach, then send `SIGCONT`. Forks of such
    /// processes are reported as `forked` exec events (not stopped). Only
    /// while armed ([`StopMaps::set_armed`], on [`BpfPipeline::stop_maps`]):
    /// whoever arms it must make sure someone continues the processes left
    /// in [`StopMaps::pending`] if the reader dies.
    pub stop_on_exec_comm: bool,
    /// Size of the packet ring in bytes (power of two, page multiple);
    /// `None` keeps the object's default
    /// ([`spliff_recorder_ebpf::abi::PACKET_RINGBUF_DEFAULT_BYTES`]).
    pub packet_ring_bytes: Option<u32>,
    /// With [`PipelineOptions::filter_enabled`]: the packet hooks keep only packets of
    /// TCP connections of selected processes (sock_ops at their connect, the TLS probes
    /// at their first call), decided in the kernel. `false` keeps every packet.
    pub packets_scoped: bool,
}

impl Default for PipelineOptions<'_> {
    fn default() -> Self {
        Self {
            object: BPF_OBJECT,
            target_tgid: None,
            ring_buffer_bytes: None,
            filter_enabled: false,
            stop_on_exec_comm: false,
            packet_ring_bytes: None,
            packets_scoped: false,
        }
    }
}

/// How [`BpfPipeline::track_process`] treats a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tracking {
    /// Record it and its descendants born from now on.
    Record,
    /// Record it, not its children (`--pid`).
    Only,
    /// Do not record it, but record its descendants born from now on (the
    /// recorder itself, as the parent of `-- CMD`).
    ChildrenOnly,
}

/// Kernel counters of what could not be delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelLoss {
    /// Events dropped because the ring buffer was full.
    pub events: u64,
    /// Plaintext bytes in those events (TLS data only).
    pub bytes: u64,
}

/// One attached uprobe, to detach with [`BpfPipeline::detach_uprobe`].
#[derive(Debug)]
pub struct UprobeLink {
    program: &'static str,
    id: UProbeLinkId,
}

/// The loaded and attached kernel programs plus the reader of their events.
pub struct BpfPipeline {
    events: RingBuf<MapData>,
    /// What read_events sleeps on: the TLS ring, and the packet ring once
    /// taken.
    wakeup: wakeup::Wakeup,
    // Owns the programs, their attachments and the remaining maps; dropping
    // it detaches and unloads everything.
    ebpf: Ebpf,
}

impl fmt::Debug for BpfPipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BpfPipeline")
            .field("ebpf", &self.ebpf)
            .finish_non_exhaustive()
    }
}

impl BpfPipeline {
    /// Loads, configures and attaches the kernel programs.
    ///
    /// Needs root (or CAP_BPF + CAP_PERFMON) and kernel BTF; the error says
    /// which is missing.
    pub fn load(options: &PipelineOptions<'_>) -> Result<Self, BpfError> {
        // Explicitly, and as a hard error: aya's loader silently skips CO-RE
        // relocation without BTF, and the programs would then read
        // build-kernel offsets on this kernel. The loader parses the same file
        // again (its constructor always does): checking on another thread
        // meanwhile keeps the second parse (tens of ms) off the start-up.
        let btf_check = std::thread::spawn(Btf::from_sys_fs);
        let mut loader = EbpfLoader::new();
        match btf_check.join() {
            Ok(Ok(_)) => {}
            Ok(Err(source)) => return Err(BpfError::KernelBtf { source }),
            Err(panic) => std::panic::resume_unwind(panic),
        }

        for bytes in [options.ring_buffer_bytes, options.packet_ring_bytes]
            .into_iter()
            .flatten()
        {
            let page_size = page_size();
            if !bytes.is_power_of_two()
                || usize::try_from(bytes).map_or(true, |b| b % page_size != 0)
            {
                return Err(BpfError::RingBufferSize { bytes, page_size });
            }
        }

        let mut realigned = Vec::new();
        let object = aligned(options.object, &mut realigned);
        let target_tgid = options.target_tgid.map_or(0, NonZeroU32::get);
        let filter_enabled = u32::from(options.filter_enabled);
        let stop_on_exec_comm = u32::from(options.stop_on_exec_comm);
        let packets_scoped = u32::from(options.packets_scoped && options.filter_enabled);

        loader
            // must_exist: a renamed global must fail loudly, not leave the
            // filter off.
            .override_global(names::TARGET_TGID_GLOBAL, &target_tgid, true)
            .override_global(names::FILTER_ENABLED_GLOBAL, &filter_enabled, true)
            .override_global(names::STOP_ON_EXEC_COMM_GLOBAL, &stop_on_exec_comm, true)
            .override_global(names::PACKETS_SCOPED_GLOBAL, &packets_scoped, true);
        if let Some(bytes) = options.ring_buffer_bytes {
            loader.map_max_entries(names::EVENTS_MAP, bytes);
        }
        if let Some(bytes) = options.packet_ring_bytes {
            loader.map_max_entries(names::PACKETS_MAP, bytes);
        }
        let mut ebpf = loader.load(object).map_err(|error| {
            error::classify(error, "loading the BPF object", |source| BpfError::Load {
                source,
            })
        })?;

        // Fork first: a child forked between two attachments must already be
        // tracked when its exec is reported.
        attach_raw_tracepoint(
            &mut ebpf,
            names::PROCESS_FORK_PROGRAM,
            names::PROCESS_FORK_RAW_TRACEPOINT,
        )?;
        attach_raw_tracepoint(
            &mut ebpf,
            names::PROCESS_EXEC_PROGRAM,
            names::PROCESS_EXEC_RAW_TRACEPOINT,
        )?;
        attach_raw_tracepoint(
            &mut ebpf,
            names::PROCESS_EXIT_PROGRAM,
            names::PROCESS_EXIT_RAW_TRACEPOINT,
        )?;
        attach_raw_tracepoint(
            &mut ebpf,
            names::SYS_ENTER_PROGRAM,
            names::SYS_ENTER_RAW_TRACEPOINT,
        )?;
        // Uprobe programs are loaded (verified) now, attached per library
        // file later: a verifier problem shows up before anything runs.
        for name in names::TLS_PROGRAMS
            .iter()
            .map(|&(name, _)| name)
            .chain(names::GO_PROGRAMS.iter().copied())
        {
            program_mut::<UProbe>(&mut ebpf, name)?
                .load()
                .map_err(load_error(name))?;
        }

        // Loaded (verified) now, attached by the caller once it has a
        // cgroup v2 directory (attach_sock_ops).
        program_mut::<SockOps>(&mut ebpf, names::SOCK_OPS_PROGRAM)?
            .load()
            .map_err(load_error(names::SOCK_OPS_PROGRAM))?;

        if ebpf.map(names::STATS_MAP).is_none() {
            return Err(BpfError::MissingFromObject {
                kind: "map",
                name: names::STATS_MAP,
            });
        }
        let events = ebpf
            .take_map(names::EVENTS_MAP)
            .ok_or(BpfError::MissingFromObject {
                kind: "map",
                name: names::EVENTS_MAP,
            })?;
        let events = RingBuf::try_from(events).map_err(|source| BpfError::Map {
            map: names::EVENTS_MAP,
            source,
        })?;

        let wakeup =
            wakeup::Wakeup::new(events.as_fd()).map_err(|source| BpfError::Poll { source })?;
        Ok(Self {
            events,
            wakeup,
            ebpf,
        })
    }

    /// Hands every pending record to `on_record`, decoded and validated.
    /// Without pending records, waits up to `timeout` for some first, or for
    /// the kernel to wake the packet ring's reader. Records wake the waiter
    /// only when a ring fills up, so callers poll with a short timeout (tens
    /// of milliseconds).
    ///
    /// Returns how many records were handed over (0 on timeout). Malformed
    /// records arrive as `Err`: the caller decides whether to count, log or
    /// stop.
    pub fn read_events<F>(&mut self, timeout: Duration, mut on_record: F) -> Result<usize, BpfError>
    where
        F: FnMut(Result<Event, DecodeError>),
    {
        let handed = self.drain(&mut on_record);
        if handed > 0 {
            return Ok(handed);
        }
        // TLS events do not wake the reader one by one (see
        // spliff_wakeup_flags in bpf/common.h): after a timeout there may
        // be records without a wakeup, so drain either way.
        self.wakeup
            .wait(timeout)
            .map_err(|source| BpfError::Poll { source })?;
        Ok(self.drain(&mut on_record))
    }

    fn drain<F>(&mut self, on_record: &mut F) -> usize
    where
        F: FnMut(Result<Event, DecodeError>),
    {
        let mut handed = 0;
        while handed < MAX_RECORDS_PER_READ {
            let Some(item) = self.events.next() else {
                break;
            };
            let decoded = decode(&item);
            // Release the ring space before running caller code.
            drop(item);
            on_record(decoded);
            handed += 1;
        }
        handed
    }

    /// Attaches uprobe program `program` (one of
    /// [`names::TLS_PROGRAMS`]) to `symbol` in the library file `path`,
    /// for every process mapping it, or only `pid`. Stays attached until
    /// [`BpfPipeline::detach_uprobe`] or the pipeline is dropped.
    pub fn attach_uprobe(
        &mut self,
        program: &'static str,
        symbol: &str,
        path: &Path,
        pid: Option<NonZeroU32>,
    ) -> Result<UprobeLink, BpfError> {
        let target = || format!("{symbol} in {}", path.display());
        self.attach_uprobe_to(
            program,
            UProbeAttachLocation::Symbol(symbol),
            path,
            pid,
            target,
        )
    }

    /// Attaches uprobe program `program` (one of [`names::GO_PROGRAMS`]) at
    /// file offset `offset` of `path`, which must be the first byte of an
    /// instruction (the caller decoded the function): a uprobe anywhere else
    /// corrupts the program's code.
    pub fn attach_uprobe_at(
        &mut self,
        program: &'static str,
        path: &Path,
        offset: u64,
        pid: Option<NonZeroU32>,
    ) -> Result<UprobeLink, BpfError> {
        let target = || format!("offset {offset:#x} of {}", path.display());
        let location = UProbeAttachLocation::AbsoluteOffset(offset);
        self.attach_uprobe_to(program, location, path, pid, target)
    }

    fn attach_uprobe_to(
        &mut self,
        program: &'static str,
        location: UProbeAttachLocation<'_>,
        path: &Path,
        pid: Option<NonZeroU32>,
        target: impl FnOnce() -> String,
    ) -> Result<UprobeLink, BpfError> {
        let scope = match pid {
            Some(pid) => UProbeScope::OneProcess(pid),
            None => UProbeScope::AllProcesses,
        };
        let id = program_mut::<UProbe>(&mut self.ebpf, program)?
            .attach(location, path, scope)
            .map_err(|error| {
                error::classify(error, "attaching a uprobe", |source| BpfError::Attach {
                    program,
                    target: target(),
                    source,
                })
            })?;
        Ok(UprobeLink { program, id })
    }

    /// Detaches a uprobe attached by [`BpfPipeline::attach_uprobe`] (and
    /// closes its file descriptors: per-process uprobes of processes that
    /// are gone must not pile up). `false` if it was not attached (any
    /// more): there is nothing left to undo then.
    pub fn detach_uprobe(&mut self, link: UprobeLink) -> bool {
        program_mut::<UProbe>(&mut self.ebpf, link.program).is_ok_and(|p| p.detach(link.id).is_ok())
    }

    /// Detaches many uprobes at once, concurrently. Each detach waits for a
    /// kernel grace period (about a quarter of a second on a 6.x kernel, for
    /// every uprobe: sixty of them took fifteen seconds one after the other);
    /// detaches running at the same time share their grace periods.
    pub fn detach_uprobes(&mut self, links: Vec<UprobeLink>) {
        const THREADS: usize = 16;
        let mut owned = Vec::with_capacity(links.len());
        for link in links {
            if let Ok(program) = program_mut::<UProbe>(&mut self.ebpf, link.program)
                && let Ok(taken) = program.take_link(link.id)
            {
                owned.push(taken);
            }
        }
        let per_thread = owned.len().div_ceil(THREADS).max(1);
        std::thread::scope(|scope| {
            while !owned.is_empty() {
                let chunk: Vec<_> = owned.drain(..per_thread.min(owned.len())).collect();
                // Dropping a link detaches it.
                scope.spawn(move || drop(chunk));
            }
        });
    }

    /// Attaches the sock_ops program to the cgroup v2 directory `cgroup`
    /// (open, read-only): from now on every TCP socket in that cgroup's
    /// subtree reports [`Event::TcpSocket`] at connect, establishment and
    /// each state change. Attached as a BPF link, which the kernel always
    /// runs next to programs others attached there (multi mode; a link
    /// refuses explicit attach flags). Stays attached until the pipeline is dropped; the
    /// attachment holds the cgroup itself, so the directory may be closed
    /// and its hierarchy unmounted right after this returns.
    pub fn attach_sock_ops(
        &mut self,
        cgroup: BorrowedFd<'_>,
        cgroup_path: &Path,
    ) -> Result<(), BpfError> {
        program_mut::<SockOps>(&mut self.ebpf, names::SOCK_OPS_PROGRAM)?
            .attach(cgroup, CgroupAttachMode::Single)
            .map_err(|error| {
                error::classify(error, "attaching a BPF program", |source| {
                    BpfError::Attach {
                        program: names::SOCK_OPS_PROGRAM,
                        target: format!("cgroup {}", cgroup_path.display()),
                        source,
                    }
                })
            })?;
        Ok(())
    }

    /// Puts process `tgid` in the capture's scope (with
    /// [`PipelineOptions::filter_enabled`]); children it forks from now on
    /// are added by the kernel.
    pub fn track_process(&mut self, tgid: u32, how: Tracking) -> Result<(), BpfError> {
        let value = match how {
            Tracking::Record => spliff_recorder_ebpf::abi::TRACK_RECORD,
            Tracking::ChildrenOnly => spliff_recorder_ebpf::abi::TRACK_FOLLOW,
            Tracking::Only => spliff_recorder_ebpf::abi::TRACK_ONLY,
        };
        let map = map_mut(&mut self.ebpf, names::TRACKED_TGIDS_MAP)?;
        let mut tracked = BpfHashMap::<_, u32, u32>::try_from(map)
            .map_err(map_error(names::TRACKED_TGIDS_MAP))?;
        tracked
            .insert(tgid, value, 0)
            .map_err(map_error(names::TRACKED_TGIDS_MAP))
    }

    /// Puts processes named `comm` in scope (the kernel compares the first
    /// 15 bytes, as it stores them).
    pub fn filter_comm(&mut self, comm: &str) -> Result<(), BpfError> {
        let mut key = [0u8; COMM_LEN];
        let bytes = comm.as_bytes();
        let n = bytes.len().min(COMM_LEN - 1);
        key[..n].copy_from_slice(&bytes[..n]);
        self.comm_filter()?
            .insert(key, 1, 0)
            .map_err(map_error(names::COMM_FILTER_MAP))
    }

    /// Empties the comm filter: from now on no comm is in scope, and with
    /// [`PipelineOptions::stop_on_exec_comm`] the kernel stops no more
    /// processes (a recorder shutting down calls this before its last
    /// drain, so every stopped process is reported and can be continued).
    pub fn clear_comm_filter(&mut self) -> Result<(), BpfError> {
        let mut comms = self.comm_filter()?;
        let keys: Vec<[u8; COMM_LEN]> = comms.keys().filter_map(Result::ok).collect();
        for key in keys {
            comms
                .remove(&key)
                .map_err(map_error(names::COMM_FILTER_MAP))?;
        }
        Ok(())
    }

    /// Handles of the kernel's ledger of stopped processes (see
    /// [`PipelineOptions::stop_on_exec_comm`]) with descriptors of their
    /// own (close-on-exec, like every descriptor the pipeline holds).
    pub fn stop_maps(&self) -> Result<StopMaps, BpfError> {
        StopMaps::duplicate(&self.ebpf)
    }

    fn comm_filter(&mut self) -> Result<BpfHashMap<&mut MapData, [u8; COMM_LEN], u8>, BpfError> {
        let map = map_mut(&mut self.ebpf, names::COMM_FILTER_MAP)?;
        BpfHashMap::try_from(map).map_err(map_error(names::COMM_FILTER_MAP))
    }

    /// What the kernel programs could not deliver since load.
    pub fn kernel_loss(&self) -> Result<KernelLoss, BpfError> {
        Ok(KernelLoss {
            events: self.stat(Stat::RingbufFull)?,
            bytes: self.stat(Stat::RingbufFullBytes)?,
        })
    }

    /// Events the kernel programs dropped because the ring buffer was full,
    /// since load.
    pub fn lost_events(&self) -> Result<u64, BpfError> {
        self.stat(Stat::RingbufFull)
    }

    fn stat(&self, stat: Stat) -> Result<u64, BpfError> {
        let map = self
            .ebpf
            .map(names::STATS_MAP)
            .ok_or(BpfError::MissingFromObject {
                kind: "map",
                name: names::STATS_MAP,
            })?;
        let stats = PerCpuArray::<_, u64>::try_from(map).map_err(map_error(names::STATS_MAP))?;
        let per_cpu = stats
            .get(&(stat as u32), 0)
            .map_err(map_error(names::STATS_MAP))?;
        Ok(per_cpu.iter().fold(0, |sum: u64, &n| sum.saturating_add(n)))
    }
}

fn map_mut<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut aya::maps::Map, BpfError> {
    ebpf.map_mut(name)
        .ok_or(BpfError::MissingFromObject { kind: "map", name })
}

/// Names the map in every error of an operation on it.
fn map_error(map: &'static str) -> impl Fn(aya::maps::MapError) -> BpfError {
    move |source| BpfError::Map { map, source }
}

/// The program `name` of the object as type `T`; errors name the program.
fn program_mut<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, BpfError>
where
    &'a mut T: TryFrom<&'a mut Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(BpfError::MissingFromObject {
            kind: "program",
            name,
        })?
        .try_into()
        .map_err(|source| BpfError::ProgramLoad {
            program: name,
            source,
        })
}

/// The error of loading (verifying) program `name`.
fn load_error(name: &'static str) -> impl FnOnce(ProgramError) -> BpfError {
    move |error| {
        error::classify(error, "loading a BPF program", |source| {
            BpfError::ProgramLoad {
                program: name,
                source,
            }
        })
    }
}

fn attach_raw_tracepoint(
    ebpf: &mut Ebpf,
    name: &'static str,
    tracepoint: &str,
) -> Result<(), BpfError> {
    let program: &mut RawTracePoint = program_mut(ebpf, name)?;
    program.load().map_err(load_error(name))?;
    program.attach(tracepoint).map_err(|error| {
        error::classify(error, "attaching a BPF program", |source| {
            BpfError::Attach {
                program: name,
                target: format!("raw tracepoint {tracepoint}"),
                source,
            }
        })
    })?;
    Ok(())
}

/// `object` itself when 8-byte aligned (the ELF parser reads headers in
/// place), otherwise a copy placed at an aligned offset inside `storage`.
fn aligned<'a>(object: &'a [u8], storage: &'a mut Vec<u8>) -> &'a [u8] {
    const ALIGN: usize = 8;
    if object.as_ptr().align_offset(ALIGN) == 0 {
        return object;
    }
    storage.clear();
    storage.resize(object.len() + ALIGN - 1, 0);
    let offset = storage.as_ptr().align_offset(ALIGN);
    match storage.get_mut(offset..offset + object.len()) {
        Some(slot) => {
            slot.copy_from_slice(object);
            slot
        }
        // align_offset may decline; the parser then reports the misalignment.
        None => object,
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misaligned_objects_are_copied_to_an_aligned_offset() {
        let bytes: &[u8] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
        let mut storage = Vec::new();
        for shift in 0..8 {
            let mut buffer = [0u8; 32];
            buffer[shift..shift + bytes.len()].copy_from_slice(bytes);
            let input = &buffer[shift..shift + bytes.len()];
            let out = aligned(input, &mut storage);
            assert_eq!(out, bytes);
            assert_eq!(out.as_ptr().align_offset(8), 0);
        }
    }
}
