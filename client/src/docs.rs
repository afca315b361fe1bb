//! Shell completions and man pages, generated from the clap definitions so
//! they cannot drift from the flags.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap_complete::Shell;
use sigil_client::ClientError;

/// Writes `shell`'s completion script for `cmd` to standard output.
pub(crate) fn completions(mut cmd: clap::Command, shell: Shell) -> Result<(), ClientError> {
    let name = cmd.get_name().to_owned();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut buf);
    // Written here, not by clap_complete, which panics on a closed pipe.
    let mut out = std::io::stdout().lock();
    out.write_all(&buf)
        .and_then(|()| out.flush())
        .map_err(|source| ClientError::Io {
            what: "writing the completion script".into(),
            source,
        })
}

/// Writes `NAME.1` for `cmd` and `NAME-SUB.1` for each visible subcommand,
/// at every depth, into `dir`; returns the files written.
pub(crate) fn man_pages(cmd: clap::Command, dir: &Path) -> Result<Vec<PathBuf>, ClientError> {
    std::fs::create_dir_all(dir).map_err(|source| ClientError::Io {
        what: format!("creating {}", dir.display()),
        source,
    })?;
    // Built, subcommands get their display names (sigil-verify-chain);
    // `help` is no command of its own to document.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    // Subcommands carry no version of their own: every page names sigil's.
    let source = format!(
        "{} {}",
        cmd.get_name(),
        cmd.get_version().unwrap_or_default()
    );
    let mut written = Vec::new();
    write_pages(&cmd, &source, dir, &mut written)?;
    Ok(written)
}

fn write_pages(
    cmd: &clap::Command,
    source: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), ClientError> {
    let man = clap_mangen::Man::new(cmd.clone()).source(source);
    let path = dir.join(man.get_filename());
    man.generate_to(dir).map_err(|source| ClientError::Io {
        what: format!("writing {}", path.display()),
        source,
    })?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, source, dir, written)?;
    }
    Ok(())
}
