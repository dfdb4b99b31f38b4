//! Time: jobs end in order as the clock moves, and replicating primaries send their deltas.

use super::*;

impl World {
    /// Moves time forward to `now`: jobs progress and end in order, ended jobs past their
    /// retention are removed, and replicating primaries send their deltas. Time never goes back.
    pub fn advance(&mut self, now: Millis) {
        if now < self.now {
            return;
        }
        self.ensure_index();
        loop {
            // Nothing is due before `next_due`: the common case (a call while jobs run) skips
            // the scan entirely.
            if self.index.as_ref().is_some_and(|ix| now < ix.next_due) {
                break;
            }
            let mut earliest = Millis::MAX;
            let mut next: Option<(Millis, HostName, JobId, bool)> = None;
            for (h, id) in self.index.as_ref().map_or(&[][..], |ix| &ix.running[..]) {
                let Some((at, ok)) = self.job(h, id).and_then(Self::due) else {
                    continue;
                };
                earliest = earliest.min(at);
                if at <= now
                    && next
                        .as_ref()
                        .is_none_or(|(a, nh, nid, _)| (at, h, id) < (*a, nh, nid))
                {
                    next = Some((at, h.clone(), id.clone(), ok));
                }
            }
            let Some((at, host, id, ok)) = next else {
                if let Some(ix) = self.index.as_mut() {
                    ix.next_due = earliest;
                }
                break;
            };
            self.now = self.now.max(at);
            self.finish_job(&host, &id, ok);
            if let Some(ix) = self.index.as_mut() {
                ix.next_due = 0;
            }
        }
        self.now = now;
        self.refresh_progress();
        self.purge_jobs();
        self.background_deltas();
    }

    pub(super) fn background_deltas(&mut self) {
        let now = self.now;
        if self.index.as_ref().is_some_and(|ix| now < ix.next_delta) {
            return;
        }
        let mut due = Vec::new();
        let mut next = Millis::MAX;
        for (hname, h) in &self.hosts {
            for v in h.vms.values() {
                if v.mode != ReplicationMode::Primary || v.busy_with.is_some() {
                    continue;
                }
                let Some(r) = v.rel(RelIx::Primary) else {
                    continue;
                };
                if r.state != ReplicationState::Replicating {
                    continue;
                }
                let interval = u64::from(r.settings.replication_interval.max(30)) * 1000;
                let at = r
                    .last_replication_time
                    .unwrap_or(0)
                    .saturating_add(interval);
                if now >= at {
                    due.push((hname.clone(), v.id.clone()));
                    next = next.min(now.saturating_add(interval));
                } else {
                    next = next.min(at);
                }
            }
        }
        // The table's ReplicateDelta rows decide: a delta when the replica is reachable,
        // degraded health when it is not.
        for (host, vm) in due {
            let op = Operation::ReplicateDelta { vm: vm.clone() };
            if let Ok(rule) = self.select(&host, Some(&vm), &op, OpKind::ReplicateDelta) {
                let mut scratch = Answer::new();
                self.finish_rule(
                    rule,
                    &host,
                    Some(&vm),
                    Some(RelIx::Primary),
                    &op,
                    &JobArgs::default(),
                    &mut scratch,
                );
            }
        }
        // The scan is the truth for now; a state change since resets `next_delta` to 0.
        if let Some(ix) = self.index.as_mut() {
            ix.next_delta = next;
        }
    }
}
