//! Saying what was not recorded: a selected process that made TCP
//! connections but has no recorded TLS data is named at the end of the
//! capture, with the TLS-looking libraries it maps (and whether they were
//! hooked), so an empty trace always comes with a reason.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use spliff_recorder::{
    bpf::{Event, SocketOp},
    probes::{self, LibrarySpec},
};

/// Processes that asked for TCP connections and what they map.
#[derive(Debug, Default)]
pub struct Unrecorded {
    /// With a scope only the selected processes' execs are reported, so
    /// every process seen is selected; without one, every process is, and
    /// only those mapping a TLS-looking library are worth naming.
    scoped: bool,
    /// The libraries `--lib` hooks.
    hooked: Vec<&'static LibrarySpec>,
    /// Processes in scope (exec events, --pid, --comm).
    selected: HashSet<u32>,
    /// Processes with recorded TLS data.
    recorded: HashSet<u32>,
    /// pid -> what it did and maps.
    connecting: BTreeMap<u32, Connecting>,
    /// Programs with BoringSSL compiled in that were not hooked, and why
    /// (the search refused them), by path.
    refused: BTreeMap<String, String>,
}

#[derive(Debug)]
struct Connecting {
    comm: String,
    connects: u64,
    /// (path, library name, hooked); `None`: gone before its maps were read.
    libraries: Option<Vec<(String, &'static str, bool)>>,
    /// Refused BoringSSL programs it maps: (path, why).
    refused: Vec<(String, String)>,
}

impl Unrecorded {
    /// Nothing seen yet.
    pub fn new(scoped: bool, hooked: Vec<&'static LibrarySpec>) -> Self {
        Self {
            scoped,
            hooked,
            ..Self::default()
        }
    }

    /// A process in scope from the start (--pid, --comm).
    /// Programs whose BoringSSL was found but not hooked: (path, why).
    pub fn note_refused<'a>(&mut self, refused: impl Iterator<Item = (&'a Path, &'a String)>) {
        for (path, why) in refused {
            self.refused
                .entry(path.display().to_string())
                .or_insert_with(|| why.clone());
        }
    }

    pub fn select(&mut self, pid: u32) {
        self.selected.insert(pid);
    }

    /// Takes note of one kernel event (before it is converted).
    pub fn observe(&mut self, event: &Event) {
        match event {
            Event::ProcessExec(exec) => {
                self.selected.insert(exec.pid);
            }
            Event::TlsData(data) => {
                self.recorded.insert(data.pid);
            }
            Event::TcpSocket(socket)
                if socket.op == SocketOp::Connect
                    && socket.pid != 0
                    && (!self.scoped || self.selected.contains(&socket.pid)) =>
            {
                let hooked = &self.hooked;
                let refused = &self.refused;
                let entry = self
                    .connecting
                    .entry(socket.pid)
                    .or_insert_with(|| Connecting {
                        // The process's name, not the connecting thread's
                        // (Firefox connects from its "Socket Thread").
                        comm: process_comm(socket.pid).unwrap_or_else(|| socket.comm.clone()),
                        connects: 0,
                        // Read now: at the end of the capture it may be gone.
                        libraries: tls_libraries(socket.pid, hooked),
                        refused: refused_mapped(socket.pid, refused),
                    });
                entry.connects += 1;
            }
            _ => {}
        }
    }

    /// One line per process that connected but has no recorded TLS data.
    pub fn report(&self) -> Vec<String> {
        self.connecting
            .iter()
            .filter(|(pid, _)| !self.recorded.contains(pid))
            .filter(|(_, c)| {
                self.scoped
                    || !c.refused.is_empty()
                    || c.libraries.as_ref().is_some_and(|l| !l.is_empty())
            })
            .map(|(pid, c)| {
                let refused = c.refused.iter().map(|(path, why)| {
                    format!("; {path} has BoringSSL compiled in, not hooked: {why}")
                });
                format!(
                    "{} (pid {pid}) made {} TCP connection{} but no TLS data was recorded: {}{}",
                    c.comm,
                    c.connects,
                    if c.connects == 1 { "" } else { "s" },
                    describe(c.libraries.as_deref()),
                    refused.collect::<String>()
                )
            })
            .collect()
    }
}

fn describe(libraries: Option<&[(String, &'static str, bool)]>) -> String {
    match libraries {
        None => "it ended before its libraries could be read".into(),
        Some([]) => "no known TLS library mapped (statically linked? plain TCP?)".into(),
        Some(libraries) => {
            let each: Vec<String> = libraries
                .iter()
                .map(|(path, name, hooked)| {
                    let state = match (
                        hooked,
                        probes::LIBRARIES.iter().find(|l| l.display == *name),
                    ) {
                        (true, _) => "hooked: no TLS on these connections?".to_string(),
                        (false, Some(_)) => {
                            format!("not hooked: see --lib {}", name.to_lowercase())
                        }
                        (false, None) => "not supported by spliff".to_string(),
                    };
                    format!("{path} ({name}, {state})")
                })
                .collect();
            format!("it maps {}", each.join(", "))
        }
    }
}

/// The TLS-looking library files process `pid` maps, each with its
/// library's name and whether it is among `hooked`; `None` if its maps
/// cannot be read.
pub fn tls_libraries(
    pid: u32,
    hooked: &[&'static LibrarySpec],
) -> Option<Vec<(String, &'static str, bool)>> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    let mut found: Vec<(String, &'static str, bool)> = Vec::new();
    for path in maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter(|path| path.starts_with('/'))
    {
        let Some(name) = Path::new(path).file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let library = match probes::library_of_file(name) {
            Some(l) => Some((l.display, hooked.iter().any(|h| h.kind == l.kind))),
            None => probes::UNHOOKED_TLS_FILES
                .iter()
                .find(|(_, pattern)| matches(pattern, name))
                .map(|(display, _)| (*display, false)),
        };
        if let Some((display, is_hooked)) = library
            && !found.iter().any(|(p, _, _)| p == path)
        {
            found.push((path.to_string(), display, is_hooked));
        }
    }
    if found.is_empty() {
        let exe = format!("/proc/{pid}/exe");
        if let Some(stack) = super::embedded_tls::unsupported_in(Path::new(&exe)) {
            let path = std::fs::read_link(&exe).map_or(exe, |p| p.display().to_string());
            found.push((path, stack, false));
        }
    }
    Some(found)
}

/// `pattern` with an optional `*` at the end, as in the probe table.
/// The refused BoringSSL programs process `pid` maps.
fn refused_mapped(pid: u32, refused: &BTreeMap<String, String>) -> Vec<(String, String)> {
    if refused.is_empty() {
        return Vec::new();
    }
    let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
        return Vec::new();
    };
    let mut found: Vec<(String, String)> = Vec::new();
    for path in maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
    {
        if let Some(why) = refused.get(path)
            && !found.iter().any(|(p, _)| p == path)
        {
            found.push((path.to_string(), why.clone()));
        }
    }
    found
}

fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == pattern,
    }
}

/// The name of process `pid` (its main thread's), if it still runs.
fn process_comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|c| c.trim_end().to_string())
}
