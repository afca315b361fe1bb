//! An offline-root ceremony on SoftHSM2 for the root tests: officers
//! `officer-a` and `officer-b` (2 of 2) and the daemon's token `sigil`, in
//! one SoftHSM configuration, driven through the `sigil` CLI.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::{bin, Daemon, IN_PROCESS_TOKENS};
use sigil_testkit::SoftHsm;

/// The tokens, the ceremony directory and the daemon's config.
pub struct Ceremony {
    /// SOFTHSM2_CONF shared by every token.
    pub conf: PathBuf,
    /// Officer a's token.
    pub a: SoftHsm,
    /// Officer b's token.
    pub b: SoftHsm,
    /// The root directory.
    pub dir: PathBuf,
    /// sigild's config (chain key on token `sigil`).
    pub config: PathBuf,
    /// The daemon's token.
    pub token: SoftHsm,
    tmp: PathBuf,
}

impl Ceremony {
    /// Tokens and paths under `tmp`.
    pub fn new(tmp: &Path) -> Ceremony {
        let a = SoftHsm::new(tmp, "officer-a");
        let b = SoftHsm::new(tmp, "officer-b");
        let hsm = SoftHsm::new(tmp, "sigil");
        Self::on(tmp, a, b, hsm)
    }

    /// A ceremony on this process's SoftHSM tokens ([`IN_PROCESS_TOKENS`]),
    /// for a test that opens the daemon's token itself; paths under `tmp`.
    /// One test per process may use it: the tokens are not emptied.
    pub fn in_process(tmp: &Path) -> Ceremony {
        let tokens = SoftHsm::in_process(IN_PROCESS_TOKENS);
        let (a, b, hsm) = (
            tokens.named("officer-a"),
            tokens.named("officer-b"),
            tokens.named("sigil"),
        );
        Self::on(tmp, a, b, hsm)
    }

    fn on(tmp: &Path, a: SoftHsm, b: SoftHsm, hsm: SoftHsm) -> Ceremony {
        Ceremony {
            conf: a.conf.clone(),
            config: hsm.config(tmp, 2),
            token: hsm,
            a,
            b,
            dir: tmp.join("ceremony"),
            tmp: tmp.to_owned(),
        }
    }

    /// Starts sigild on `data` with the token config and `extra` args.
    pub fn daemon(&self, data: &Path, extra: &[&str]) -> Daemon {
        self.daemon_with(data, &self.config, extra)
    }

    /// Starts sigild on `data` with `config` (which must name the token).
    pub fn daemon_with(&self, data: &Path, config: &Path, extra: &[&str]) -> Daemon {
        self.daemon_env(data, config, extra, &[])
    }

    /// [`Ceremony::daemon_with`] with more environment (crash points).
    pub fn daemon_env(
        &self,
        data: &Path,
        config: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        let mut args = vec!["--config", config.to_str().unwrap()];
        args.extend_from_slice(extra);
        let mut all = vec![("SOFTHSM2_CONF", self.conf.to_str().unwrap())];
        all.extend_from_slice(env);
        Daemon::try_start_env(data, &args, &all).unwrap()
    }

    /// `sigil ARGS` with the tokens' configuration: (code, stdout, stderr).
    pub fn sigil(&self, args: &[&str]) -> (i32, String, String) {
        let o = Command::new(bin("sigil"))
            .args(args)
            .env("SOFTHSM2_CONF", &self.conf)
            .output()
            .expect("run sigil");
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// `sigil ARGS`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.sigil(args);
        assert_eq!(code, 0, "sigil {args:?}: {out}{err}");
        out
    }

    /// `sigil root sign FILE --dir DIR --sign-with TOKEN`, which must
    /// succeed; its output (`staged: PATH ...` or `complete: PATH ...`).
    pub fn sign(&self, file: &Path, dir: &Path, token: &SoftHsm) -> String {
        self.ok(&[
            "root",
            "sign",
            file.to_str().unwrap(),
            "--dir",
            dir.to_str().unwrap(),
            "--sign-with",
            &token.uri(),
        ])
    }

    /// The path a `sigil root` step reports (`complete: PATH ...`).
    pub fn placed(out: &str) -> PathBuf {
        PathBuf::from(
            out.split_whitespace()
                .nth(1)
                .expect("staged|complete: PATH"),
        )
    }

    /// `sigil root init` (2 of 2); the root keys to pin.
    pub fn init(&self) -> Vec<String> {
        let out = self.ok(&[
            "root",
            "init",
            "--dir",
            self.dir(),
            "--deployment",
            "payments-prod",
            "--threshold",
            "2",
            "--key",
            &self.a.uri(),
            "--key",
            &self.b.uri(),
        ]);
        let words: Vec<&str> = out.split_whitespace().collect();
        words
            .windows(2)
            .filter(|w| w[0] == "--root-key")
            .map(|w| w[1].to_owned())
            .collect()
    }

    fn dir(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    /// The whole first ceremony for `daemon`: root 1, imported; `standbys`
    /// certified with the versions in use (adopted). Returns the pins and
    /// the keyset's path.
    pub fn under_root(&self, daemon: &Daemon, standbys: u32) -> (Vec<String>, PathBuf) {
        let pins = self.init();
        let (code, out, err) = self.import(daemon, &self.dir.join("root/1.root.json"));
        assert_eq!(code, 0, "{out}{err}");
        (pins, self.certify(daemon, standbys, true))
    }

    /// `sigil keys import-statement FILE` on `daemon`.
    pub fn import(&self, daemon: &Daemon, file: &Path) -> (i32, String, String) {
        let sock = daemon.admin_socket();
        self.sigil(&[
            "keys",
            "--admin-socket",
            sock.to_str().unwrap(),
            "import-statement",
            file.to_str().unwrap(),
        ])
    }

    /// `sigil keys ARGS` on `daemon`'s admin socket.
    pub fn keys(&self, daemon: &Daemon, args: &[&str]) -> (i32, String, String) {
        let sock = daemon.admin_socket();
        let mut all = vec!["keys", "--admin-socket", sock.to_str().unwrap()];
        all.extend_from_slice(args);
        self.sigil(&all)
    }

    /// Prepares `count` standbys on `daemon`, has both officers certify
    /// them (`adopt`: the versions in use too) and imports the keyset;
    /// returns its path.
    pub fn certify(&self, daemon: &Daemon, count: u32, adopt: bool) -> PathBuf {
        let req = self.tmp.join(format!("req-{}.json", std::process::id()));
        let (code, out, err) = self.keys(
            daemon,
            &[
                "prepare",
                "--count",
                &count.to_string(),
                "--out",
                req.to_str().unwrap(),
            ],
        );
        assert_eq!(code, 0, "{out}{err}");
        let mut args = vec![
            "root",
            "certify",
            req.to_str().unwrap(),
            "--dir",
            self.dir(),
            "--sign-with",
        ];
        let a = self.a.uri();
        args.push(&a);
        if adopt {
            args.push("--adopt");
        }
        self.ok(&args);
        let staged = self.staged_keyset();
        let path = Self::placed(&self.sign(&staged, &self.dir, &self.b));
        let (code, out, err) = self.import(daemon, &path);
        assert_eq!(code, 0, "{out}{err}");
        path
    }

    fn staged_keyset(&self) -> PathBuf {
        std::fs::read_dir(self.dir.join("staged"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().contains("keyset."))
            .expect("a staged keyset")
    }

    /// Both officers sign `body` (a keyset body, edited at will) in a
    /// scratch copy of the root directory (its roots and keysets); returns
    /// the signed file.
    pub fn signed_by_officers(&self, body: Value, name: &str) -> PathBuf {
        let roots = (1..)
            .take_while(|v| self.dir.join(format!("root/{v}.root.json")).exists())
            .count();
        let keysets: Vec<Value> = (1..)
            .map(|v| self.dir.join(format!("keyset/{v}.keyset.json")))
            .take_while(|p| p.exists())
            .map(|p| Self::body(&p))
            .collect();
        self.signed_by_officers_with(&self.dir, body, name, roots, &keysets)
    }

    /// [`Ceremony::signed_by_officers`] over another history: roots 1 to
    /// `roots` of the root directory `from`, and `keysets` (bodies) as the
    /// keysets the officers' medium holds (a stale or divergent medium).
    pub fn signed_by_officers_with(
        &self,
        from: &Path,
        body: Value,
        name: &str,
        roots: usize,
        keysets: &[Value],
    ) -> PathBuf {
        let scratch = self.tmp.join(format!("scratch-{name}"));
        std::fs::create_dir_all(scratch.join("root")).unwrap();
        std::fs::create_dir_all(scratch.join("keyset")).unwrap();
        for v in 1..=roots {
            let f = format!("root/{v}.root.json");
            std::fs::copy(from.join(&f), scratch.join(&f)).unwrap();
        }
        for (i, k) in keysets.iter().enumerate() {
            let doc = serde_json::json!({"signed": k, "signatures": []});
            std::fs::write(
                scratch.join(format!("keyset/{}.keyset.json", i + 1)),
                serde_json::to_string(&doc).unwrap(),
            )
            .unwrap();
        }
        let file = self.tmp.join(format!("{name}.json"));
        let doc = serde_json::json!({"signed": body, "signatures": []});
        std::fs::write(&file, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        let mut last = file;
        for officer in [&self.a, &self.b] {
            last = Self::placed(&self.sign(&last, &scratch, officer));
        }
        last
    }

    /// The `signed` body of a document file.
    pub fn body(file: &Path) -> Value {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        v["signed"].clone()
    }

    /// `--root-key A --root-key B --root-threshold 2 --directory DIR`.
    pub fn pinned<'a>(pins: &'a [String], directory: &'a str) -> Vec<&'a str> {
        let mut v: Vec<&str> = pins
            .iter()
            .flat_map(|p| ["--root-key", p.as_str()])
            .collect();
        v.extend(["--root-threshold", "2", "--directory", directory]);
        v
    }
}
