#!/usr/bin/env python3
"""crash — crash tests of the real brokerd (docs/testing.md).

  crash.py --build build/san short|long|SCENARIO... [--cycles N] [--seed S]

Each scenario starts brokerd (127.0.0.1, one ephemeral port kept across
restarts, a temp data dir), runs crashdrv producers (acks=all, every write's
outcome recorded), kills and restarts the broker as the scenario says, dumps
the whole topic after every restart (acknowledged values must be at their
offsets, offsets read before must keep their value) and at the end checks
everything (tests/crash/check.py).  One summary line per scenario:

  crash: scenario=kill9 runs=10 acked=N lost=0 duplicates=D ... outcome=PASS

Exit 1 on any violation (or when the negative scenario powerloss-nofsync
does NOT see lost writes), 2 when the harness itself fails.
"""

import argparse
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check  # noqa: E402

TOPIC = "crash"
CUT_RE = re.compile(r"powerloss: cut (\S+) to (\d+) bytes \(was (\d+)\)")


class HarnessError(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """brokerd on a fixed loopback port and data dir; one log per start."""

    def __init__(self, build, workdir, port, opts):
        self.bin = os.path.join(build, "brokerd")
        self.workdir = workdir
        self.data = os.path.join(workdir, "data")
        self.port = port
        self.opts = opts
        self.proc = None
        self.starts = 0
        self.log = None

    def addr(self):
        return "127.0.0.1:%d" % self.port

    def start(self, failpoints=None, wait=True):
        self.starts += 1
        self.log = os.path.join(self.workdir, "broker.%d.log" % self.starts)
        env = dict(os.environ)
        env.pop("BROKERD_FAILPOINTS", None)
        if failpoints:
            env["BROKERD_FAILPOINTS"] = failpoints
        args = [self.bin, "--listen", self.addr(), "--data-dir", self.data,
                "-o", "admin.listen=off"]
        for o in self.opts:
            args += ["-o", o]
        self.t_start = time.monotonic()
        with open(self.log, "w") as logf:
            self.proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, env=env)
        if wait:
            return self.wait_ready()
        return None

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def ready(self):
        return "ready: listening on" in self.log_text()

    def wait_ready(self, timeout=120):
        """Seconds from start to the "ready" line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready():
                return time.monotonic() - self.t_start
            if self.proc.poll() is not None:
                raise HarnessError("brokerd exited with %s before ready; see %s"
                                   % (self.proc.returncode, self.log))
            time.sleep(0.01)
        raise HarnessError("brokerd not ready within %d s; see %s" % (timeout, self.log))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def wait_exit(self, timeout=60):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise HarnessError("brokerd did not exit within %d s; see %s" % (timeout, self.log))

    def kill9(self):
        """SIGKILL; an already dead broker is a finding (it crashed)."""
        if not self.alive():
            raise HarnessError("brokerd died on its own (status %s); see %s"
                               % (self.proc.returncode, self.log))
        self.proc.kill()
        self.proc.wait()

    def apply_powerloss_cuts(self):
        """Apply again the cuts the powerloss hook logged: io_uring writes
        in flight at the cut may have landed after it, before the process
        was gone.  Returns (cut lines, bytes cut)."""
        n = cut = 0
        for m in CUT_RE.finditer(self.log_text()):
            path, size, was = m.group(1), int(m.group(2)), int(m.group(3))
            n += 1
            if os.path.exists(path) and os.path.getsize(path) > size:
                cut += os.path.getsize(path) - size
                os.truncate(path, size)
            elif was > size:
                cut += was - size
        return n, cut


class Run:
    """One scenario: broker, producers, dumps and the checker's report."""

    def __init__(self, args, name, parts=4, opts=(), producers=4, per_batch=4, value_bytes=64):
        self.args = args
        self.name = name
        self.workdir = tempfile.mkdtemp(prefix="brokerd-crash-%s." % name, dir=args.tmp)
        self.drv = os.path.join(args.build, "tests", "crashdrv")
        self.parts = parts
        self.producers = producers
        self.per_batch = per_batch
        self.value_bytes = value_bytes
        self.broker = Broker(args.build, self.workdir, free_port(),
                             ["checkpoint.interval.ms=3600000", "flush.mode=always"] + list(opts))
        self.prod = None
        self.prod_runs = 0
        self.outcome_prefixes = []
        self.seen = {}
        self.rep = check.Report()
        self.cycles = 0
        self.dumps = 0
        self.notes = []
        self.exits = {}

    def drv_cmd(self, cmd, *extra):
        return [self.drv, cmd, "-b", self.broker.addr(), "-t", TOPIC, "-P", str(self.parts)] + list(extra)

    def create_topic(self):
        subprocess.run(self.drv_cmd("create"), check=True, timeout=60)

    def start_producers(self, seconds=3600, producers=None, per_batch=None, value_bytes=None):
        self.prod_runs += 1
        prefix = os.path.join(self.workdir, "out.%d" % self.prod_runs)
        self.outcome_prefixes.append((prefix, producers or self.producers))
        self.prod = subprocess.Popen(self.drv_cmd(
            "produce", "-n", str(producers or self.producers), "-r", str(self.prod_runs),
            "-o", prefix, "-s", str(seconds), "-k", str(per_batch or self.per_batch),
            "-v", str(value_bytes or self.value_bytes)),
            stdout=subprocess.PIPE, text=True)

    def stop_producers(self):
        if self.prod is None:
            return
        self.prod.send_signal(signal.SIGTERM)
        try:
            out, _ = self.prod.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.prod.kill()
            raise HarnessError("crashdrv produce did not stop within 60 s")
        if self.prod.returncode != 0:
            raise HarnessError("crashdrv produce failed (%s)" % self.prod.returncode)
        self.notes.append(out.strip())
        self.prod = None

    def outcome_files(self):
        return ["%s.p%d" % (prefix, i) for prefix, n in self.outcome_prefixes for i in range(n)]

    def dump(self):
        self.dumps += 1
        path = os.path.join(self.workdir, "dump.%d" % self.dumps)
        r = subprocess.run(self.drv_cmd("dump", "-o", path), timeout=180)
        if r.returncode != 0:
            raise HarnessError("crashdrv dump failed (%s)" % r.returncode)
        return check.Dump(path)

    def verify(self):
        """After a restart: acked values in place, no offset changed."""
        att = check.read_outcomes(self.outcome_files())  # before the dump
        d = self.dump()
        rep = check.Report()
        rep.lost = set(self.rep.lost)  # report each lost write once
        check.check_acked(att, d, rep)
        check.check_changed(d, self.seen, rep)
        self.rep.merge(rep)

    def final(self):
        self.stop_producers()
        att = check.read_outcomes(self.outcome_files())
        d = self.dump()
        rep = check.Report()
        rep.lost = set(self.rep.lost)
        check.check_changed(d, self.seen, rep)
        check.check_final(att, d, rep)
        self.rep.merge(rep)
        self.rep.acked = rep.acked

    def summary(self):
        c = self.rep.counts
        return ("crash: scenario=%s runs=%d acked=%d lost=%d duplicates=%d unexplained_duplicates=%d "
                "changed=%d order=%d failed_visible=%d gaps=%d phantom=%d outcome=%s"
                % (self.name, self.cycles, self.rep.acked, c["lost"], c["duplicates"],
                   c["unexplained_duplicates"], c["changed"], c["order"], c["failed_visible"],
                   c["gaps"], c["phantom"], "FAIL" if self.rep.violations() else "PASS"))

    def cleanup(self, keep):
        if self.prod is not None and self.prod.poll() is None:
            self.prod.kill()
            self.prod.wait()
        if self.broker.alive():
            self.broker.proc.kill()
            self.broker.proc.wait()
        if keep:
            print("crash: %s: files kept in %s" % (self.name, self.workdir))
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


def preload(run, seconds, min_bytes):
    """Fill the log with bigger batches for recovery scenarios."""
    run.start_producers(seconds=seconds, producers=4, per_batch=32, value_bytes=2048)
    deadline = time.monotonic() + seconds + 30
    while run.prod.poll() is None and time.monotonic() < deadline:
        if data_bytes(run.broker.data) >= min_bytes:
            break
        time.sleep(0.2)
    run.stop_producers()


def data_bytes(d):
    total = 0
    for root, _, files in os.walk(d):
        for f in files:
            if f.endswith(".log"):
                try:
                    total += os.path.getsize(os.path.join(root, f))
                except OSError:
                    pass
    return total


# --- scenarios ------------------------------------------------------------------

def sc_kill9(run, cycles, rnd):
    """Scenario 1: kill -9 at random moments during produce, acks=all."""
    run.broker.start()
    run.create_topic()
    run.start_producers()
    for _ in range(cycles):
        time.sleep(rnd.uniform(0.15, 0.8))
        run.broker.kill9()
        run.cycles += 1
        run.broker.start()
        run.verify()
    time.sleep(0.3)
    run.final()


def sc_powerloss(run, cycles, rnd, nofsync):
    """Power cut simulated by the powerloss failpoint: the logs' files are
    cut back to what a really executed fsync covered.  nofsync: fsyncs are
    nops reporting success, so acknowledged writes must be lost."""
    run.broker.start()
    run.create_topic()
    run.start_producers()
    fired_n = cut_bytes = 0
    for _ in range(cycles):
        run.broker.signal(signal.SIGTERM)
        if run.broker.wait_exit() != 0:
            raise HarnessError("brokerd: unclean exit on SIGTERM; see %s" % run.broker.log)
        fp = "log.write=powerloss@%d" % rnd.randint(30, 300)
        if nofsync:
            fp += ",log.fsync.submit=skip"
        run.broker.start(failpoints=fp)
        try:
            run.broker.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            run.broker.kill9()  # too few writes to reach the point: kill -9
        fired = "power loss" in run.broker.log_text()
        ncut, cut = run.broker.apply_powerloss_cuts()
        if fired and ncut == 0:
            raise HarnessError("powerloss fired but logged no cuts; see %s" % run.broker.log)
        fired_n += fired
        cut_bytes += cut
        run.cycles += 1
        run.broker.start()
        run.verify()
    run.notes.append("power cut in %d of %d cycles (else kill -9), %d unsynced bytes dropped"
                     % (fired_n, cycles, cut_bytes))
    time.sleep(0.3)
    run.final()


def clean_exit(st, text):
    """A clean stop: exit 0 after "clean shutdown" (a signal that arrives
    while the broker closes its logs is ignored)."""
    return "clean shutdown" in text and st == 0


def sc_sigterm2(run, cycles, rnd):
    """Scenario 12a: SIGTERM twice in a row under load.  The second signal
    makes the broker leave its loop at once, but it still closes every log
    (flush, clean checkpoint); the restart scans nothing."""
    run.broker.start()
    run.create_topic()
    run.start_producers()
    for _ in range(cycles):
        time.sleep(rnd.uniform(0.2, 0.6))
        run.broker.signal(signal.SIGTERM)
        time.sleep(rnd.uniform(0, 0.02))
        run.broker.signal(signal.SIGTERM)
        st = run.broker.wait_exit()
        text = run.broker.log_text()
        if not clean_exit(st, text):
            raise HarnessError("brokerd: exit status %s after two SIGTERMs (want a clean "
                               "shutdown); see %s" % (st, run.broker.log))
        run.exits[st] = run.exits.get(st, 0) + 1
        run.cycles += 1
        run.broker.start()
        if "unclean shutdown" in run.broker.log_text():
            raise HarnessError("restart after SIGTERM scanned the log (unclean); see %s"
                               % run.broker.log)
        run.verify()
    run.notes.append("exit statuses after two SIGTERMs: %s" % run.exits)
    time.sleep(0.3)
    run.final()


def recovery_setup(run, min_bytes, seconds):
    run.broker.start()
    run.create_topic()
    preload(run, seconds, min_bytes)
    run.broker.kill9()


def start_recovering(run):
    """Start the broker and return once it is recovering (started, not
    ready); False when it became ready first."""
    run.broker.start(wait=False)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = run.broker.log_text()
        if "ready: listening" in text:
            return False
        if "unclean shutdown, scanning" in text:
            return True
        if not run.broker.alive():
            raise HarnessError("brokerd exited during recovery; see %s" % run.broker.log)
        time.sleep(0.002)
    raise HarnessError("brokerd neither recovering nor ready in 30 s; see %s" % run.broker.log)


def sc_sigterm_recovery(run, cycles, rnd, min_bytes, seconds):
    """Scenario 12b: SIGTERM while the broker recovers after kill -9.  The
    broker finishes recovering, then shuts down cleanly (exit 0); the next
    start scans nothing."""
    recovery_setup(run, min_bytes, seconds)
    hits = 0
    for _ in range(cycles):
        recovering = start_recovering(run)
        run.broker.signal(signal.SIGTERM)
        st = run.broker.wait_exit()
        hits += recovering
        if st != 0 or "clean shutdown" not in run.broker.log_text():
            raise HarnessError("brokerd: exit status %s on SIGTERM during recovery (want 0, "
                               "clean shutdown); see %s" % (st, run.broker.log))
        run.cycles += 1
        t = run.broker.start()
        if "unclean shutdown" in run.broker.log_text():
            raise HarnessError("restart after SIGTERM during recovery scanned again; see %s"
                               % run.broker.log)
        run.notes.append("clean restart %.2f s" % t)
        run.verify()
        # next cycle: load, then kill -9 to recover again
        run.start_producers(seconds=1, producers=2)
        time.sleep(1.2)
        run.stop_producers()
        run.broker.kill9()
    run.notes.append("SIGTERM landed during recovery in %d of %d cycles" % (hits, cycles))
    if hits == 0:
        raise HarnessError("no SIGTERM landed during recovery: preload more data")
    run.broker.start()
    run.final()


def sc_kill9_recovery(run, cycles, rnd, min_bytes, seconds):
    """Scenario 12c: kill -9 during recovery, repeatedly: recovery is
    idempotent, the final start recovers everything acknowledged."""
    recovery_setup(run, min_bytes, seconds)
    t0 = time.monotonic()
    run.broker.start()  # one full recovery, to know how long it takes
    full = time.monotonic() - t0
    run.verify()
    run.broker.kill9()
    hits = 0
    for _ in range(cycles):
        run.broker.start(wait=False)
        time.sleep(rnd.uniform(0, full))
        hits += not run.broker.ready()
        run.broker.kill9()
        run.cycles += 1
    run.notes.append("full recovery %.2f s; kill -9 landed during recovery in %d of %d cycles"
                     % (full, hits, cycles))
    run.broker.start()
    run.final()


SHORT = [
    ("checker-selftest", dict(cycles=0)),
    ("kill9", dict(cycles=10)),
    ("powerloss", dict(cycles=4)),
    ("powerloss-nofsync", dict(cycles=1)),
    ("sigterm2", dict(cycles=3)),
    ("sigterm-recovery", dict(cycles=2, min_bytes=48 << 20, seconds=20)),
    ("kill9-recovery", dict(cycles=5, min_bytes=48 << 20, seconds=20)),
]
# The long form repeats each scenario in rounds of a fresh broker and data
# directory: every restart re-reads the whole log to check that no value
# moved, so one run of 100 cycles would cost O(cycles^2).
LONG = [
    ("checker-selftest", dict(cycles=0)),
    ("kill9", dict(cycles=10, rounds=10)),
    ("powerloss", dict(cycles=10, rounds=10)),
    ("powerloss-nofsync", dict(cycles=1, rounds=3)),
    ("sigterm2", dict(cycles=10, rounds=10)),
    ("sigterm-recovery", dict(cycles=5, rounds=4, min_bytes=128 << 20, seconds=60)),
    ("kill9-recovery", dict(cycles=10, rounds=10, min_bytes=64 << 20, seconds=60)),
]


def run_selftest(args):
    d = tempfile.mkdtemp(prefix="brokerd-crash-selftest.", dir=args.tmp)
    try:
        problems = check.selftest(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    for p in problems:
        print("  " + p)
    print("crash: scenario=checker-selftest outcome=%s" % ("FAIL" if problems else "PASS"))
    return not problems


def run_scenario(args, name, kw, rnd):
    """Run kw["rounds"] (default 1) rounds of scenario `name`; with several,
    print each round's line and then their total."""
    if name == "checker-selftest":
        return run_selftest(args)
    rounds = kw.get("rounds", 1)
    ok_all, cycles, acked, counts = True, 0, 0, {}
    for i in range(rounds):
        if rounds > 1:
            print("crash: scenario=%s round %d of %d" % (name, i + 1, rounds))
        ok, run = run_round(args, name, kw, rnd)
        ok_all = ok_all and ok
        cycles += run.cycles
        acked += run.rep.acked
        for k, v in run.rep.counts.items():
            counts[k] = counts.get(k, 0) + v
    if rounds > 1:
        print("crash: scenario=%s rounds=%d runs=%d acked=%d %s outcome=%s"
              % (name, rounds, cycles, acked,
                 " ".join("%s=%d" % kv for kv in sorted(counts.items())),
                 ("PASS" if ok_all else "FAIL") +
                 (" (loss seen in every round, as required)"
                  if ok_all and name == "powerloss-nofsync" else "")))
    return ok_all


def run_round(args, name, kw, rnd):
    expect_loss = name == "powerloss-nofsync"
    run = Run(args, name)
    ok = False
    try:
        if name == "kill9":
            sc_kill9(run, kw["cycles"], rnd)
        elif name in ("powerloss", "powerloss-nofsync"):
            sc_powerloss(run, kw["cycles"], rnd, expect_loss)
        elif name == "sigterm2":
            sc_sigterm2(run, kw["cycles"], rnd)
        elif name == "sigterm-recovery":
            sc_sigterm_recovery(run, kw["cycles"], rnd, kw["min_bytes"], kw["seconds"])
        elif name == "kill9-recovery":
            sc_kill9_recovery(run, kw["cycles"], rnd, kw["min_bytes"], kw["seconds"])
        else:
            raise HarnessError("unknown scenario %s" % name)
        for n in run.notes:
            if n:
                print("  %s: %s" % (name, n))
        for e in run.rep.examples[:10]:
            print("  " + e)
        print(run.summary())
        if expect_loss:
            ok = run.rep.counts["lost"] > 0
            print("crash: scenario=%s: the checker %s lost acknowledged writes when fsync is a "
                  "nop (expected: it does)" % (name, "saw" if ok else "did NOT see"))
        else:
            ok = run.rep.violations() == 0
    except (HarnessError, subprocess.SubprocessError) as e:
        print("crash: scenario=%s runs=%d outcome=ERROR: %s" % (name, run.cycles, e))
    finally:
        run.cleanup(keep=not ok or args.keep)
    return ok, run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--cycles", type=int, default=None, help="override every scenario's cycles")
    ap.add_argument("--keep", action="store_true", help="keep the work directories")
    ap.add_argument("--tmp", default=os.environ.get("TMPDIR", "/tmp"))
    ap.add_argument("what", nargs="+", help="short, long, or scenario names")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rnd = random.Random(seed)
    table = dict(SHORT)
    todo = []
    for w in args.what:
        if w == "short":
            todo += SHORT
        elif w == "long":
            todo += LONG
            table = dict(LONG)
        elif w in table:
            todo.append((w, dict(table[w])))
        else:
            ap.error("unknown scenario %s (known: %s)" % (w, ", ".join(table)))
    print("crash: seed %d (rerun with --seed %d)" % (seed, seed))
    t0 = time.monotonic()
    failed = []
    for name, kw in todo:
        kw = dict(kw)
        if args.cycles is not None:
            kw["cycles"] = args.cycles
        t = time.monotonic()
        if not run_scenario(args, name, kw, rnd):
            failed.append(name)
        print("crash: scenario=%s took %.1f s" % (name, time.monotonic() - t))
    print("crash: %d scenarios, %d failed%s, %.1f s" % (len(todo), len(failed),
          (" (" + ", ".join(failed) + ")") if failed else "", time.monotonic() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
