//! Shell completions and man pages come from the clap definitions of the
//! built binaries: `sigil completions SHELL`, `sigil man --out DIR` and
//! `sigild --man`.

use std::path::Path;
use std::process::{Command, Output};

use sigil_tests::bin;

/// Runs `name` with `args`, without the SIGIL_* variables a developer's
/// shell may hold.
fn run(name: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin(name));
    cmd.args(args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SIGIL_") {
            cmd.env_remove(k);
        }
    }
    cmd.output().expect("run the binary")
}

fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

fn completion(shell: &str) -> String {
    stdout_ok(&run("sigil", &["completions", shell]))
}

#[test]
fn bash_completion_parses_registers_and_knows_the_commands() {
    let script = completion("bash");
    for word in [
        "append",
        "verify",
        "directory",
        "keys",
        "--endpoint",
        "--key-file",
    ] {
        assert!(script.contains(word), "bash completion lacks {word}");
    }
    // The nested commands are completed too.
    assert!(
        script.contains("rotation-endorsement"),
        "no verify chain flags"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sigil.bash");
    std::fs::write(&file, &script).unwrap();
    let syntax = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(
        syntax.status.success(),
        "bash -n rejects the script: {}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    // Sourcing it registers a completion function for `sigil`, and asking
    // it to complete `sigil ver` offers `verify`.
    let probe = format!(
        r#"source {f}
complete -p sigil >/dev/null || exit 3
fn=$(complete -p sigil | sed -n 's/.*-F \([^ ]*\).*/\1/p')
COMP_WORDS=(sigil ver); COMP_CWORD=1; COMP_LINE="sigil ver"; COMP_POINT=${{#COMP_LINE}}
"$fn" sigil ver sigil
printf '%s\n' "${{COMPREPLY[@]}}""#,
        f = file.display()
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &probe])
        .output()
        .unwrap();
    let offered = stdout_ok(&out);
    assert!(
        offered.lines().any(|l| l.trim() == "verify"),
        "completing `sigil ver` offered {offered:?}"
    );
}

#[test]
fn zsh_and_fish_completions_name_the_commands() {
    let zsh = completion("zsh");
    assert!(
        zsh.starts_with("#compdef sigil"),
        "{}",
        &zsh[..zsh.len().min(80)]
    );
    let fish = completion("fish");
    for (shell, script) in [("zsh", &zsh), ("fish", &fish)] {
        for word in ["append", "verify", "endpoint"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    assert!(fish.contains("complete -c sigil"), "not a fish script");
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let out = run("sigil", &["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tcsh"));
}

/// The `.TH` title line of a roff page, which must come before any text.
fn title(page: &str) -> &str {
    page.lines()
        .find(|l| !l.starts_with(".ie") && !l.starts_with(".el") && !l.starts_with(".\\\""))
        .unwrap_or_default()
}

#[test]
fn man_pages_are_written_for_sigil_and_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("man/man1");
    let out = run("sigil", &["man", "--out", out_dir.to_str().unwrap()]);
    let listed = stdout_ok(&out);

    for (page, name) in [
        ("sigil.1", "sigil"),
        ("sigil-verify.1", "sigil-verify"),
        ("sigil-verify-chain.1", "sigil-verify-chain"),
        ("sigil-append.1", "sigil-append"),
        ("sigil-keys-revoke.1", "sigil-keys-revoke"),
        ("sigil-completions.1", "sigil-completions"),
    ] {
        let path = out_dir.join(page);
        assert!(
            listed.lines().any(|l| Path::new(l) == path),
            "{page} not listed in {listed:?}"
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{page}: {e}"));
        let th = title(&text);
        assert!(
            th.starts_with(&format!(".TH {name} 1 ")),
            "{page} does not open with its .TH line: {th:?}"
        );
    }
    // `help` is no page of its own.
    assert!(!out_dir.join("sigil-help.1").exists());

    let top = std::fs::read_to_string(out_dir.join("sigil.1")).unwrap();
    for word in ["\\-\\-endpoint", "SIGIL_ENDPOINT", "verify", "append"] {
        assert!(top.contains(word), "sigil.1 lacks {word}");
    }
    let chain = std::fs::read_to_string(out_dir.join("sigil-verify-chain.1")).unwrap();
    assert!(chain.contains("rotation\\-endorsement"), "{chain}");
}

#[test]
fn sigild_prints_its_man_page() {
    let page = stdout_ok(&run("sigild", &["--man"]));
    let th = title(&page);
    assert!(th.starts_with(".TH sigild 1 "), "{th:?}");
    for word in ["\\-\\-data\\-dir", "\\-\\-grpc\\-listen", "\\-\\-config"] {
        assert!(page.contains(word), "sigild.1 lacks {word}");
    }
}
