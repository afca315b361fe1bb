//! The walk over a chain's receipts: links, runs, segments, replays,
//! revocations and windows, receipt by receipt.

use std::collections::{HashMap, HashSet, VecDeque};

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::{Options, RevokedReceipt, Summary, Window};
use crate::endorsement::Endorsement;
use crate::policy::check_policy;
use crate::receipt::{self, session, Receipt};
use crate::{timestamp, Error};

struct Run {
    open_nonce: String,
    closed: bool,
}

pub(super) struct Walk<'a> {
    opts: &'a Options,
    session_id: Option<String>,
    endorsements: Vec<Endorsement>,
    used: Vec<bool>,
    expected_key: String,
    prev_hash: String,
    prev_seq: u64,
    segment_start: usize,
    runs: HashMap<String, Run>,
    active: Option<String>,
    recent: VecDeque<(String, String)>,
    recent_set: HashSet<(String, String)>,
    blocked: HashSet<(String, String, String)>,
    prev_time: Option<OffsetDateTime>,
    /// The current segment's key is revoked and its trusted last receipt
    /// on this chain has been seen.
    through_reached: bool,
    summary: Summary,
}

pub(super) fn has(r: &Receipt, k: &str) -> bool {
    r.action_record.get(k).is_some_and(|v| !v.is_null())
}

pub(super) fn open_payload(r: &Receipt) -> Option<&Map<String, Value>> {
    let c = r.action_record.get("session_control")?.as_object()?;
    if c.get("kind")?.as_str()? != "session_open" {
        return None;
    }
    c.get("open")?.as_object()
}

fn control<'r>(r: &'r Receipt, payload: &str) -> Option<&'r Map<String, Value>> {
    r.action_record
        .get("session_control")?
        .as_object()?
        .get(payload)?
        .as_object()
}

fn str_member<'m>(m: &'m Map<String, Value>, k: &str) -> &'m str {
    m.get(k).and_then(Value::as_str).unwrap_or("")
}

fn u64_member(m: &Map<String, Value>, k: &str) -> u64 {
    m.get(k).and_then(Value::as_u64).unwrap_or(0)
}

impl<'a> Walk<'a> {
    /// A walk from `first`, the chain's first of `count` receipts.
    pub(super) fn new(
        opts: &'a Options,
        session_id: Option<String>,
        endorsements: Vec<Endorsement>,
        first: &Receipt,
        count: usize,
    ) -> Walk<'a> {
        let expected_key = opts
            .pinned
            .clone()
            .unwrap_or_else(|| first.signer_key.clone())
            .to_lowercase();
        Walk {
            opts,
            session_id,
            used: vec![false; endorsements.len()],
            endorsements,
            prev_hash: String::new(),
            prev_seq: 0,
            segment_start: 0,
            runs: HashMap::new(),
            active: None,
            recent: VecDeque::new(),
            recent_set: HashSet::new(),
            blocked: HashSet::new(),
            prev_time: None,
            through_reached: false,
            summary: Summary {
                receipt_count: count,
                final_seq: 0,
                root_hash: String::new(),
                start_time: first.str_field("timestamp").to_owned(),
                end_time: String::new(),
                segment_keys: vec![expected_key.clone()],
                endorsements_used: 0,
                revoked: Vec::new(),
                session_id: None,
                tails: HashMap::new(),
            },
            expected_key,
        }
    }

    /// Ends the walk after `last`, the chain's last receipt: every
    /// endorsement used, the last segment sound, no receipt of a revoked
    /// key beyond what it vouches for.
    pub(super) fn finish(self, last: &Receipt) -> Result<Summary, Error> {
        let tail_error = self.end_segment(true).err();
        if self.used.iter().any(|u| !u) {
            return Err(Error::Endorsement(
                "unused rotation endorsement (a boundary is missing: was the chain cut?)".into(),
            ));
        }
        let mut summary = self.summary;
        summary.endorsements_used = self.used.len();
        summary.session_id = self.session_id;
        summary.end_time = last.str_field("timestamp").to_owned();
        if !summary.revoked.is_empty() {
            let list: Vec<String> = summary
                .revoked
                .iter()
                .map(|r| {
                    format!(
                        "line {} (chain_seq {}, {}: {})",
                        r.line, r.seq, r.timestamp, r.why
                    )
                })
                .collect();
            let also = tail_error.map(|e| format!("; and {e}")).unwrap_or_default();
            return Err(Error::Policy(format!(
                "{} receipt(s) signed by a revoked key that it no longer vouches for: {}{also}",
                list.len(),
                list.join(", ")
            )));
        }
        match tail_error {
            Some(e) => Err(e),
            None => Ok(summary),
        }
    }

    pub(super) fn step(&mut self, i: usize, line: usize, r: &Receipt) -> Result<(), Error> {
        let fail = |m: String| Err(Error::Chain(m));
        let seq = match r.chain_seq() {
            Some(s) if r.action_record["chain_seq"].is_u64() => s,
            _ => return fail("chain_seq is not a uint64".into()),
        };
        let prev = r.str_field("chain_prev_hash");
        let transition = r
            .action_record
            .get("key_transition")
            .and_then(Value::as_object);
        if i == 0 {
            if transition.is_some() {
                return fail("the first receipt carries key_transition".into());
            }
            if seq != 0 {
                return fail(format!("the first receipt has chain_seq {seq}, not 0"));
            }
        } else if let Some(kt) = transition {
            self.boundary(i, r, kt, seq, prev)?;
        } else if seq == 0 {
            return fail("chain_seq 0 without key_transition".into());
        }

        receipt::verify(r, Some(&self.expected_key))?;

        let want = (i - self.segment_start) as u64;
        if seq != want {
            return fail(format!("seq gap: expected chain_seq {want}, found {seq}"));
        }
        if i == 0 {
            self.genesis(r, prev)?;
        } else if prev != self.prev_hash {
            return fail(format!(
                "chain_prev_hash mismatch: expected {}, found {prev}",
                self.prev_hash
            ));
        }
        self.session(i, r, seq, prev)?;
        let hash = r.hash()?;
        self.policies(line, r, seq, &hash)?;

        self.prev_hash = hash;
        self.prev_seq = seq;
        self.summary.final_seq = seq;
        self.summary.root_hash = self.prev_hash.clone();
        Ok(())
    }

    fn boundary(
        &mut self,
        i: usize,
        r: &Receipt,
        kt: &Map<String, Value>,
        seq: u64,
        prev: &str,
    ) -> Result<(), Error> {
        let fail = |m: &str| Err(Error::Chain(format!("key rotation boundary: {m}")));
        if seq != 0 {
            return fail("chain_seq must restart at 0");
        }
        // Exact strings, as pipelock-verify compares them.
        if str_member(kt, "prior_signer_key") != self.expected_key {
            return fail("prior_signer_key is not the current key");
        }
        if kt.get("prior_chain_seq").and_then(Value::as_u64) != Some(self.prev_seq) {
            return fail("prior_chain_seq is not the last chain_seq");
        }
        if str_member(kt, "prior_chain_hash") != self.prev_hash || prev != self.prev_hash {
            return fail("prior_chain_hash / chain_prev_hash is not the tail hash");
        }
        self.end_segment(false)?;
        let new_key = r.signer_key.to_lowercase();
        let matches: Vec<usize> = (0..self.endorsements.len())
            .filter(|&j| {
                let e = &self.endorsements[j];
                !self.used[j]
                    && Some(&e.session_id) == self.session_id.as_ref()
                    && e.prior_signer_key == self.expected_key
                    && e.prior_final_seq == self.prev_seq
                    && e.prior_tail_hash == self.prev_hash
                    && e.new_signer_key == new_key
            })
            .collect();
        match matches.as_slice() {
            [j] => self.used[*j] = true,
            [] => {
                return Err(Error::Endorsement(
                    "rotation endorsement does not match receipt boundary".into(),
                ))
            }
            _ => {
                return Err(Error::Endorsement(
                    "two endorsements match one boundary".into(),
                ))
            }
        }
        self.expected_key = new_key;
        self.through_reached = false;
        if !self.opts.policy.monotonic_across_rotations {
            self.prev_time = None;
        }
        self.segment_start = i;
        self.summary.segment_keys.push(self.expected_key.clone());
        Ok(())
    }

    fn genesis(&self, r: &Receipt, prev: &str) -> Result<(), Error> {
        let fail = |m: &str| Err(Error::Chain(format!("genesis: {m}")));
        if prev == "genesis" {
            if has(r, "run_nonce") && !r.str_field("run_nonce").is_empty()
                || open_payload(r).is_some()
            {
                return fail("a legacy \"genesis\" receipt cannot carry run_nonce or session_open");
            }
            return Ok(());
        }
        if !prev.starts_with("g1:") {
            return fail("chain_prev_hash mismatch: the first receipt must be anchored by \"genesis\" or a g1: session_open");
        }
        let Some(open) = open_payload(r) else {
            return fail("a g1: anchor needs a session_open receipt");
        };
        if str_member(open, "genesis_hash") != prev
            || u64_member(open, "chain_open_seq") != 0
            || !str_member(open, "prior_chain_head").is_empty()
            || u64_member(open, "prior_chain_seq") != 0
            || str_member(open, "run_nonce") != r.str_field("run_nonce")
        {
            return fail("the session_open does not match its g1: anchor");
        }
        if session::genesis_hash(open) != prev {
            return fail("g1: anchor is not the hash of the session_open fields");
        }
        Ok(())
    }

    fn session(&mut self, i: usize, r: &Receipt, seq: u64, prev: &str) -> Result<(), Error> {
        let fail = |m: String| Err(Error::Chain(m));
        let run = r.str_field("run_nonce");
        if run.is_empty() {
            if has(r, "session_control") {
                return fail("session_control without run_nonce".into());
            }
            return Ok(());
        }
        if let Some(open) = open_payload(r) {
            if str_member(open, "run_nonce") != run {
                return fail("session_open run_nonce differs from the receipt's".into());
            }
            if str_member(open, "open_nonce").is_empty() {
                return fail("session_open without open_nonce".into());
            }
            if self.runs.contains_key(run) {
                return fail(format!("run {run} opened twice"));
            }
            if let Some(sid) = &self.session_id {
                if str_member(open, "recorder_session") != sid {
                    return fail(format!(
                        "session_open for recorder session {:?}, expected {sid:?}",
                        str_member(open, "recorder_session")
                    ));
                }
            }
            if i > 0 {
                if prev.starts_with("g1:") || !str_member(open, "genesis_hash").is_empty() {
                    return fail("a restart session_open cannot be a genesis".into());
                }
                if u64_member(open, "chain_open_seq") != seq
                    || str_member(open, "prior_chain_head") != self.prev_hash
                    || u64_member(open, "prior_chain_seq") != self.prev_seq
                {
                    return fail(
                        "restart session_open does not point at the previous receipt".into(),
                    );
                }
            }
            self.runs.insert(
                run.to_owned(),
                Run {
                    open_nonce: str_member(open, "open_nonce").to_owned(),
                    closed: false,
                },
            );
            self.active = Some(run.to_owned());
            return Ok(());
        }
        let Some(state) = self.runs.get(run).filter(|st| !st.closed) else {
            return fail(format!("run {run} was not opened, or is closed"));
        };
        let active = self.active.as_deref() == Some(run);
        if let Some(hb) = control(r, "heartbeat") {
            if !active
                || str_member(hb, "run_nonce") != run
                || str_member(hb, "open_nonce") != state.open_nonce
            {
                return fail("heartbeat for a run that is not the active one".into());
            }
            if str_member(hb, "chain_head") != self.prev_hash
                || Some(u64_member(hb, "chain_seq_head")) != seq.checked_sub(1)
            {
                return fail(
                    "heartbeat chain_head / chain_seq_head is not the previous receipt".into(),
                );
            }
        } else if let Some(c) = control(r, "close") {
            if !active
                || str_member(c, "run_nonce") != run
                || str_member(c, "open_nonce") != state.open_nonce
            {
                return fail("session_close for a run that is not the active one".into());
            }
            let count = (i - self.segment_start + 1) as u64;
            if str_member(c, "root_hash") != self.prev_hash
                || u64_member(c, "final_seq") != seq
                || u64_member(c, "receipt_count") != count
            {
                return fail(format!(
                    "session_close does not describe the segment (expected final_seq {seq}, receipt_count {count})"
                ));
            }
            if let Some(st) = self.runs.get_mut(run) {
                st.closed = true;
            }
            self.active = None;
        }
        Ok(())
    }

    /// Checks the segment that ends here (a boundary, or the end of the
    /// file) against a revocation of its key.
    fn end_segment(&self, at_eof: bool) -> Result<(), Error> {
        let Some(rev) = self.opts.revoked.get(&self.expected_key) else {
            return Ok(());
        };
        if at_eof {
            return Err(Error::Policy(format!(
                "the chain ends inside a segment of revoked {}: a genuine chain moved on to \
                 its successor before recording the revocation",
                rev.keyid
            )));
        }
        let through = rev
            .through
            .as_ref()
            .and_then(|t| self.session_id.as_ref().and_then(|c| t.get(c)));
        if let Some((seq, _)) = through {
            if !self.through_reached {
                return Err(Error::Policy(format!(
                    "the segment of revoked {} does not reach its last trusted receipt \
                     (chain_seq {seq}) named by the revocation: a fork",
                    rev.keyid
                )));
            }
        }
        Ok(())
    }

    fn policies(&mut self, line: usize, r: &Receipt, seq: u64, hash: &str) -> Result<(), Error> {
        let policy = &self.opts.policy;
        check_policy(r, policy)?;
        // Parsed once for the time order, retirement and revocation rules.
        let ts = timestamp::parse(r.str_field("timestamp")).map_err(Error::Chain)?;
        let signer = r.signer_key.to_lowercase();
        self.summary
            .tails
            .insert(signer.clone(), (seq, hash.to_owned()));
        if policy.monotonic_time {
            if let Some(prev) = self.prev_time.filter(|p| ts < *p) {
                return Err(Error::Policy(format!(
                    "timestamp {} is earlier than the previous receipt's {}: time never goes \
                     back within a key segment (a backdated receipt?)",
                    r.str_field("timestamp"),
                    timestamp::format(prev)
                )));
            }
            self.prev_time = Some(ts);
        }
        if policy.replay_window > 0 {
            let key = (
                r.str_field("action_id").to_owned(),
                r.str_field("decision_phase").to_owned(),
            );
            if self.recent_set.contains(&key) {
                return Err(Error::Policy(format!(
                    "replay: action_id {:?} appears again in the chain",
                    key.0
                )));
            }
            self.recent.push_back(key.clone());
            self.recent_set.insert(key);
            if self.recent.len() > policy.replay_window {
                if let Some(old) = self.recent.pop_front() {
                    self.recent_set.remove(&old);
                }
            }
        }
        if policy.forbid_reversal {
            let action = (
                r.str_field("action_type").to_owned(),
                r.str_field("target").to_owned(),
                r.str_field("method").to_owned(),
            );
            match r.str_field("verdict") {
                "block" => {
                    self.blocked.insert(action);
                }
                "allow" if self.blocked.contains(&action) => {
                    return Err(Error::Policy(format!(
                    "verdict reversal: {} {} was blocked earlier in the chain and is now allowed",
                    action.0, action.1
                )))
                }
                _ => {}
            }
        }
        if let Some((keyid, at)) = self.opts.retired.get(&signer) {
            not_after_retirement(ts, r.str_field("timestamp"), keyid, *at)?;
        }
        if let Some(w) = self.opts.windows.get(&signer) {
            within_window(ts, r.str_field("timestamp"), w)?;
        }
        if let Some(rev) = self.opts.revoked.get(&signer) {
            let mut why = Vec::new();
            if ts >= rev.compromised_since {
                why.push(format!(
                    "at or after its compromise ({})",
                    timestamp::format(rev.compromised_since)
                ));
            }
            if let Some(positions) = &rev.through {
                match self.session_id.as_ref().and_then(|c| positions.get(c)) {
                    None => why
                        .push("its revocation names no trusted receipt of it on this chain".into()),
                    Some((tseq, _)) if self.through_reached => why.push(format!(
                        "after chain_seq {tseq}, where its revocation took effect"
                    )),
                    Some((tseq, thash)) => {
                        self.through_reached = seq == *tseq && hash == thash;
                    }
                }
            }
            if !why.is_empty() {
                self.summary.revoked.push(RevokedReceipt {
                    line,
                    seq,
                    timestamp: r.str_field("timestamp").to_owned(),
                    signer_key: r.signer_key.clone(),
                    why: format!("{}: {}", rev.keyid, why.join("; ")),
                });
            }
        }
        Ok(())
    }
}

/// Refuses a receipt of `keyid` dated after it was retired at `at`: a
/// retired version signs nothing new, so only a thief of it would.
pub fn check_not_after_retirement(
    r: &Receipt,
    keyid: &str,
    at: OffsetDateTime,
) -> Result<(), Error> {
    let ts = timestamp::parse(r.str_field("timestamp")).map_err(Error::Chain)?;
    not_after_retirement(ts, r.str_field("timestamp"), keyid, at)
}

fn not_after_retirement(
    ts: OffsetDateTime,
    shown: &str,
    keyid: &str,
    at: OffsetDateTime,
) -> Result<(), Error> {
    if ts > at {
        return Err(Error::Policy(format!(
            "signed by {keyid} at {shown}, after it was retired at {}: a retired version \
             signs nothing new",
            timestamp::format(at)
        )));
    }
    Ok(())
}

/// Refuses a receipt dated outside its signer's certified window.
pub fn check_window(r: &Receipt, w: &Window) -> Result<(), Error> {
    let ts = timestamp::parse(r.str_field("timestamp")).map_err(Error::Chain)?;
    within_window(ts, r.str_field("timestamp"), w)
}

fn within_window(ts: OffsetDateTime, shown: &str, w: &Window) -> Result<(), Error> {
    if ts < w.not_before || ts > w.not_after {
        return Err(Error::Policy(format!(
            "signed by {} at {shown}, outside its certified window ({} to {}): the root \
             vouches for nothing it signs then",
            w.keyid,
            timestamp::format(w.not_before),
            timestamp::format(w.not_after)
        )));
    }
    Ok(())
}
