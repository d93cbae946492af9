//! spliff's recorder: loads the kernel programs, reads the events they emit
//! and (in later issues) turns decrypted TLS traffic into pcapng traces.
//!
//! Everything that touches the kernel is Linux-only and lives in `bpf`; the
//! `spliff` binary built from this package also replays traces on any OS.

#[cfg(target_os = "linux")]
pub mod boringssl;
#[cfg(target_os = "linux")]
pub mod bpf;
#[cfg(target_os = "linux")]
pub mod golang;
#[cfg(target_os = "linux")]
pub mod method_table;
#[cfg(target_os = "linux")]
pub mod net;
#[cfg(target_os = "linux")]
pub mod privileges;
pub mod probes;
