//! Where the trace goes: a file (rotated or not), standard output, or the live view's pipe;
//! and the live view that reads it.

use std::{fs::File, path::Path};

use anyhow::{Context as _, bail};

use super::{
    host::boottime_ns,
    live_view::{self, LiveViewer},
    output_file::{self, Owner, TraceOutput},
    rotation::{self, Rotation},
};
use crate::cli::RecordArgs;

/// Where the trace goes. Until recording starts, a failure leaves no trace behind and any old
/// file as it was.
pub struct Output {
    pub view_only: bool,
    pub to_stdout: bool,
    pub shown: String,
    pub output_file: Option<TraceOutput>,
    pub file: File,
    pub view_source: Option<File>,
    pub rotation: Option<Rotation<'static>>,
}

/// Opens the trace file, standard output or the live view's pipe, and sets up rotation.
pub fn open_output(args: &RecordArgs, owner: Owner) -> anyhow::Result<Output> {
    // Without -o the live view is the output: the trace goes through a pipe to it, no file.
    let view_only = args.output.is_none();
    let output = &args.output.clone().unwrap_or_default();
    let policy = rotation::Policy::from_args(args)?;
    let to_stdout = output.as_os_str() == "-";
    if (view_only || args.live) && policy.is_some() {
        bail!(
            "the live view cannot follow a rotated capture (-C MB, -G) yet: drop --live and \
             watch with `spliff replay`, or record to one file"
        );
    }
    if to_stdout && policy.is_some() {
        bail!("-C and -G write numbered files, which cannot go to standard output (-o -)");
    }
    let first_path = match policy {
        Some(_) => Rotation::first_file(output),
        None => output.clone(),
    };
    let shown = if view_only {
        "the live view".to_owned()
    } else if to_stdout {
        "standard output".to_owned()
    } else {
        first_path.display().to_string()
    };
    let mut view_source = None;
    let (output_file, file) = if view_only {
        let (read, write) = live_view::pipe()?;
        view_source = Some(read);
        (None, write)
    } else if to_stdout {
        (None, output_file::stdout_trace()?)
    } else {
        let created = TraceOutput::create(&first_path, owner)?;
        let file = created
            .file()
            .with_context(|| format!("cannot use the trace file {shown}"))?;
        (Some(created), file)
    };
    Ok(Output {
        view_only,
        to_stdout,
        shown,
        output_file,
        file,
        view_source,
        rotation: policy.map(|policy| rotation(policy, output, owner)),
    })
}

/// Later files of a rotated capture are created by the same rules, in place at once.
fn rotation(policy: rotation::Policy, output: &Path, owner: Owner) -> Rotation<'static> {
    let open = move |path: &Path| -> anyhow::Result<File> {
        let mut created = TraceOutput::create(path, owner)?;
        created.commit()?;
        // The handle shares the lock's open file description: the lock lasts while the
        // trace is written.
        Ok(created.file()?)
    };
    Rotation::start(policy, output, Box::new(open))
}

/// The live view, when there is one: with --live it reads the trace file too.
pub fn start_viewer(args: &RecordArgs, output: &mut Output) -> anyhow::Result<Option<LiveViewer>> {
    if args.live {
        output.view_source = Some(live_view::reopen(&output.file)?);
    }
    Ok(match output.view_source.take() {
        Some(source) => Some(LiveViewer::start(
            source,
            !output.view_only,
            live_view::options(args),
            boottime_ns,
        )?),
        None => None,
    })
}
