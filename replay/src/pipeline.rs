//! The replay pipeline: trace bytes → connections → exchanges in time order. Connections are
//! reconstructed in parallel; the result does not depend on the thread count because rayon's
//! ordered collect keeps connection order and exchanges are then sorted by a total key.

use rayon::prelude::*;
use spliff_formats::ReadError;

use crate::trace_input::{ConnectionInfo, read_connections};
use crate::{ConnectionStreams, Exchange, Reconstruction, ReplayOptions, reconstruct};

/// Progress of a replay, reported through the caller's callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The trace has been indexed: this many connections to rebuild.
    Indexed {
        /// Connections found.
        connections: u64,
    },
    /// One more connection was rebuilt.
    ConnectionDone,
}

/// One connection after reconstruction.
#[derive(Debug, Clone)]
pub struct ReplayedConnection {
    /// What the trace says about it.
    pub info: ConnectionInfo,
    /// Its exchanges and notes.
    pub result: Reconstruction,
    /// Its plaintext streams (the pcapng output replays them as TCP).
    pub streams: ConnectionStreams,
}

/// A replayed trace.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Connections in the trace's order (first timestamp, then key).
    pub connections: Vec<ReplayedConnection>,
    /// `(connection index, exchange index)` of every exchange, ordered by start time, then
    /// connection key, then position: the output order of every sink.
    pub order: Vec<(usize, usize)>,
    /// Problems reading the trace.
    pub errors: Vec<ReadError>,
    /// Losses the trace could not attribute to a connection.
    pub unattributed_loss: Vec<String>,
}

impl Replayed {
    /// The exchanges in output order, with their connection.
    pub fn exchanges(&self) -> impl Iterator<Item = (&ConnectionInfo, &Exchange, usize)> + '_ {
        self.order.iter().map(|&(c, e)| {
            let conn = &self.connections[c];
            (&conn.info, &conn.result.exchanges[e], e)
        })
    }
}

/// Replays a trace. `progress` is called from worker threads.
pub fn replay(
    trace: &[u8],
    options: &ReplayOptions,
    progress: &(dyn Fn(Progress) + Sync),
) -> Replayed {
    let contents = read_connections(trace);
    progress(Progress::Indexed {
        connections: contents.connections.len() as u64,
    });
    let connections: Vec<ReplayedConnection> = contents
        .connections
        .into_par_iter()
        .map(|c| {
            let result = reconstruct(&c.streams, options);
            progress(Progress::ConnectionDone);
            ReplayedConnection {
                info: c.info,
                result,
                streams: c.streams,
            }
        })
        .collect();
    let mut order: Vec<(u64, usize, usize)> = connections
        .iter()
        .enumerate()
        .flat_map(|(ci, c)| {
            c.result
                .exchanges
                .iter()
                .enumerate()
                .map(move |(ei, ex)| (crate::har::start_ns(ex, &c.info), ci, ei))
        })
        .collect();
    // Connection indexes already follow (first timestamp, key), so (start, ci, ei) is total
    // and independent of how the work was split.
    order.sort_unstable();
    Replayed {
        connections,
        order: order.into_iter().map(|(_, c, e)| (c, e)).collect(),
        errors: contents.errors,
        unattributed_loss: contents.unattributed_loss,
    }
}
