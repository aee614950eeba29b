"""The asynchronous pipeline: Runtime.put / get / pending / queue_capacity.

Every test that involves waiting runs its threads as daemons joined with a
timeout, so a deadlock fails the test instead of hanging the run.
"""

import os
import random
import threading
import time

import numpy as np
import pytest

import shoal

JOIN_S = 120  # generous: the machine is shared


@pytest.fixture(scope="module")
def digits_x(source_dir):
    path = source_dir / "models" / "digits" / "heldout_x.npy"
    if not path.exists():
        pytest.skip(f"{path} is missing")
    return np.ascontiguousarray(np.load(path), np.float32)


@pytest.fixture(scope="module")
def program(digits_model):
    return shoal.compile(digits_model, shape="8x8x1", clusters=2)


@pytest.fixture(scope="module")
def reference(program, digits_x):
    (y,) = shoal.Runtime(program).run(digits_x)
    return np.array(y, copy=True)


def run_threads(targets, timeout=JOIN_S):
    """Runs callables in daemon threads; re-raises the first error and fails
    if any thread is still running after `timeout` seconds (a deadlock)."""
    errors = []

    def wrap(f):
        def body():
            try:
                f()
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)
        return body

    threads = [threading.Thread(target=wrap(f), daemon=True) for f in targets]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = sum(t.is_alive() for t in threads)
    assert alive == 0, f"{alive} thread(s) still running after {timeout} s: deadlock?"
    if errors:
        raise errors[0]


def big_batch(x, n=3000):
    reps = -(-n // len(x))
    return np.ascontiguousarray(np.tile(x, (reps, 1, 1, 1))[:n])


# ---------------------------------------------------------------- basics ----

def test_tags_come_back_with_their_inputs_in_put_order(program, digits_x, reference):
    rt = shoal.Runtime(program)
    rt.queue_capacity = 16
    tags = [None, "two", ("tuple", 3), [4, "unhashable list"], {"k": 5}, 6.5, object()]
    starts = [0, 5, 17, 40, 41, 100, 300]
    sizes = [1, 3, 7, 2, 1, 20, 59]
    for s, n, tag in zip(starts, sizes, tags):
        assert rt.put(digits_x[s:s + n], tag=tag) is True
    assert rt.pending == len(tags)
    for s, n, tag in zip(starts, sizes, tags):
        outputs, got = rt.get()
        assert got is tag
        assert len(outputs) == 1 and outputs[0].shape == (n, 10)
        np.testing.assert_array_equal(outputs[0], reference[s:s + n])
    assert rt.pending == 0


def test_inputs_may_be_reused_after_put(program, digits_x, reference):
    rt = shoal.Runtime(program)
    buf = digits_x[:4].copy()
    assert rt.put(buf, "a")
    buf[:] = digits_x[4:8]  # put copied the first contents
    assert rt.put(buf, "b")
    buf[:] = 0
    (ya,), ta = rt.get()
    (yb,), tb = rt.get()
    assert (ta, tb) == ("a", "b")
    np.testing.assert_array_equal(ya, reference[:4])
    np.testing.assert_array_equal(yb, reference[4:8])


def test_put_inputs_in_every_form(program, digits_x, reference):
    rt = shoal.Runtime(program)
    name = program.inputs[0].name
    assert rt.put([digits_x[:2]], 1)
    assert rt.put((digits_x[2:4],), 2)
    assert rt.put({name: digits_x[4:6]}, 3)
    for k in range(3):
        (y,), tag = rt.get()
        assert tag == k + 1
        np.testing.assert_array_equal(y, reference[2 * k:2 * k + 2])


def test_default_capacity_and_setter(program):
    rt = shoal.Runtime(program)
    assert rt.queue_capacity == 2 * program.clusters
    rt.queue_capacity = 3
    assert rt.queue_capacity == 3
    for bad in (0, -1):
        with pytest.raises(shoal.InvalidArgumentError):
            rt.queue_capacity = bad
    with pytest.raises(TypeError):
        rt.queue_capacity = 2.5
    assert rt.queue_capacity == 3


def test_put_on_a_full_queue_with_timeout_0_returns_false(program, digits_x, reference):
    rt = shoal.Runtime(program)
    rt.queue_capacity = 2
    assert rt.put(digits_x[:1], "a", timeout=0)
    assert rt.put(digits_x[1:2], "b", timeout=0)
    # Full, whether or not those two have finished: they are not taken yet.
    assert rt.put(digits_x[2:3], "c", timeout=0) is False
    t0 = time.monotonic()
    assert rt.put(digits_x[2:3], "c", timeout=0.05) is False
    assert time.monotonic() - t0 >= 0.04
    assert rt.pending == 2
    assert rt.get()[1] == "a"
    assert rt.put(digits_x[2:3], "c", timeout=0)
    assert [rt.get()[1] for _ in range(2)] == ["b", "c"]
    assert rt.pending == 0


def test_get_with_nothing_pending_raises_at_once(program, digits_x):
    """Without a time limit nothing could ever come: get() says so at once.
    With one, it waits that long for another thread's put."""
    rt = shoal.Runtime(program)
    t0 = time.monotonic()
    with pytest.raises(shoal.InvalidArgumentError, match="pending"):
        rt.get(timeout=None)
    assert time.monotonic() - t0 < 2
    assert rt.get(timeout=0) is None
    t0 = time.monotonic()
    assert rt.get(timeout=0.2) is None
    assert 0.15 < time.monotonic() - t0 < 5
    rt.put(digits_x[:1])
    rt.get()
    with pytest.raises(shoal.InvalidArgumentError):
        rt.get()


def test_get_with_timeout_on_unfinished_returns_none(program, digits_x, reference):
    rt = shoal.Runtime(program)
    batch = big_batch(digits_x)
    seen_none = False
    for _ in range(5):  # a large batch is almost never done right after put
        assert rt.put(batch, "big")
        r = rt.get(timeout=0)
        if r is None:
            seen_none = True
            assert rt.pending == 1
            r = rt.get(timeout=None)
        (y,), tag = r
        assert tag == "big"
        np.testing.assert_array_equal(y[:len(digits_x)], reference)
        if seen_none:
            break
    assert seen_none, "a 3000-sample batch was always done before get(timeout=0)"
    assert rt.pending == 0


def test_bad_timeouts_and_inputs(program, digits_x):
    rt = shoal.Runtime(program)
    with pytest.raises(shoal.InvalidArgumentError):
        rt.put(digits_x[:1], timeout=-1)
    with pytest.raises(TypeError):
        rt.put(digits_x[:1], timeout="1")
    with pytest.raises(shoal.InvalidArgumentError):
        rt.get(timeout=float("nan"))
    with pytest.raises(shoal.DTypeError):
        rt.put(digits_x[:1].astype(np.float64), "x")
    with pytest.raises(shoal.InvalidArgumentError):
        rt.put(digits_x[:1, :, :4], "x")
    assert rt.pending == 0
    assert rt._tags == {}  # failed puts keep no tag


def test_waiting_put_releases_the_gil(program, digits_x, reference):
    """A put waiting for room must let another Python thread call get()."""
    rt = shoal.Runtime(program)
    rt.queue_capacity = 1
    assert rt.put(digits_x[:1], 0)
    done = threading.Event()

    def producer():
        assert rt.put(digits_x[1:2], 1)  # waits until the main thread's get
        done.set()

    t = threading.Thread(target=producer, daemon=True)
    t.start()
    time.sleep(0.05)
    assert not done.is_set()
    assert rt.get()[1] == 0  # needs the GIL while the producer waits
    t.join(JOIN_S)
    assert done.is_set()
    (y,), tag = rt.get()
    assert tag == 1
    np.testing.assert_array_equal(y, reference[1:2])


def test_close(program, digits_x):
    with shoal.Runtime(program) as rt:
        rt.put(digits_x[:1], "t")
        assert not rt.closed
    assert rt.closed
    for call in (lambda: rt.run(digits_x[:1]), lambda: rt.put(digits_x[:1]), rt.get,
                 lambda: rt.pending, rt.plan):
        with pytest.raises(shoal.InvalidArgumentError, match="closed"):
            call()
    rt.close()  # twice is fine
    assert "closed" in repr(rt)


# --------------------------------------------------------------- threads ----

def test_four_threads_two_runtimes_random_interleavings(program, digits_x, reference):
    runtimes = [shoal.Runtime(program), shoal.Runtime(program)]
    runtimes[0].queue_capacity = 3
    runtimes[1].queue_capacity = 1
    per_thread = 80
    lock = threading.Lock()
    put_count = [0, 0]
    got = []  # (runtime index, tag) of every result taken

    def check(r, outputs, tag):
        _, s, n = tag
        assert outputs[0].shape == (n, 10)
        np.testing.assert_array_equal(outputs[0], reference[s:s + n])
        with lock:
            got.append((r, tag))

    def worker(seed):
        rnd = random.Random(seed)
        sent = 0
        while sent < per_thread:
            r = rnd.randrange(2)
            rt = runtimes[r]
            if rnd.random() < 0.55:
                n = rnd.randint(1, 5)
                s = rnd.randrange(len(digits_x) - n)
                tag = (seed, s, n)
                # Count before put: a get on another thread may take it first.
                with lock:
                    put_count[r] += 1
                if rt.put(digits_x[s:s + n], tag, timeout=rnd.choice([0, 0.001, 0.02])):
                    sent += 1
                else:
                    with lock:
                        put_count[r] -= 1
            else:
                try:
                    res = rt.get(timeout=rnd.choice([None, 0, 0.001, 0.05]))
                except shoal.InvalidArgumentError:
                    continue  # nothing pending right now
                if res is not None:
                    check(r, *res)

    run_threads([lambda s=s: worker(s) for s in range(4)])
    for r, rt in enumerate(runtimes):  # drain what the workers left
        while rt.pending:
            check(r, *rt.get())
    assert [sum(1 for r, _ in got if r == k) for k in range(2)] == put_count
    assert sum(put_count) == 4 * per_thread


def test_producer_consumer_threads_keep_order(program, digits_x, reference):
    rt = shoal.Runtime(program)
    rt.queue_capacity = 2
    n_items = 150
    received = []

    def producer():
        for i in range(n_items):
            assert rt.put(digits_x[i:i + 1], i)  # waits for the consumer

    def consumer():
        while len(received) < n_items:
            res = rt.get(timeout=1.0) if rt.pending else None
            if res is None:
                time.sleep(0.001)
                continue
            (y,), tag = res
            np.testing.assert_array_equal(y, reference[tag:tag + 1])
            received.append(tag)

    run_threads([producer, consumer])
    assert received == list(range(n_items))


def test_run_concurrently_with_put_and_get(program, digits_x, reference):
    rt = shoal.Runtime(program)

    def runner():
        for k in range(40):
            s = (7 * k) % (len(digits_x) - 9)
            (y,) = rt.run(digits_x[s:s + 9])
            np.testing.assert_array_equal(y, reference[s:s + 9])

    def pipeline():  # the only thread using the queue: at most 2 pending
        for k in range(60):
            s = (11 * k) % (len(digits_x) - 3)
            assert rt.put(digits_x[s:s + 3], s)
            if rt.pending == 2 or k == 59:
                while rt.pending:
                    (y,), tag = rt.get()
                    np.testing.assert_array_equal(y, reference[tag:tag + 3])

    run_threads([runner, pipeline, runner])
    assert rt.pending == 0


def test_a_failed_batch_raises_with_its_tag(program, digits_x):
    """The binding raises a failed batch's error with the int key it was put
    with (`_shoal_tag`); the wrapper turns it back into the tag object."""
    rt = shoal.Runtime(program)
    real = rt._rt

    class FailingGet:
        def __getattr__(self, name):
            return getattr(real, name)

        def get(self, timeout_ms):
            key = real.get(timeout_ms)[1]
            e = shoal.errors._from_kind(4, "device 0 failed")
            e._shoal_tag = key
            raise e

    rt.put(digits_x[:1], tag={"id": 7})
    rt._rt = FailingGet()
    with pytest.raises(shoal.DeviceError, match="device 0 failed") as info:
        rt.get()
    assert info.value.tag == {"id": 7}
    assert rt._tags == {}
    rt._rt = real
    assert rt.pending == 0


def test_getter_first_waits_for_another_threads_put(program, digits_x, reference):
    """The tutorial's pattern with the consumer starting first: get(timeout)
    waits for the producer's put instead of raising."""
    rt = shoal.Runtime(program)
    got = []
    consumer = threading.Thread(target=lambda: got.append(rt.get(timeout=30)))
    consumer.start()
    time.sleep(0.3)  # the consumer is waiting now
    assert rt.put(digits_x[:2], "late")
    consumer.join(30)
    assert not consumer.is_alive()
    (y,), tag = got[0]
    assert tag == "late"
    np.testing.assert_array_equal(y, reference[:2])


@pytest.mark.parametrize("blocked", ["put", "get"])
def test_close_wakes_blocked_threads(program, digits_x, blocked):
    """A thread blocked in put() on a full queue (its consumer gone) or in
    get(timeout) on an empty one wakes with an error when the runtime closes."""
    rt = shoal.Runtime(program)
    rt.queue_capacity = 1
    if blocked == "put":
        assert rt.put(digits_x[:1], 0)  # the queue is full from now on
    errors = []

    def waiter():
        try:
            if blocked == "put":
                rt.put(digits_x[:1], 1)  # no timeout: waits for a get
            else:
                rt.get(timeout=60)
        except shoal.InvalidArgumentError as e:
            errors.append(str(e))

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.3)
    assert t.is_alive()  # blocked
    t0 = time.monotonic()
    rt.close()
    t.join(10)
    assert not t.is_alive() and time.monotonic() - t0 < 5
    assert errors and ("closed" in errors[0]), errors
    with pytest.raises(shoal.InvalidArgumentError):
        rt.put(digits_x[:1])


def test_interpreter_exit_wakes_a_blocked_put(source_dir, build_dir, digits_model):
    """A non-daemon thread blocked in put() whose consumer is gone no longer
    keeps the interpreter from exiting."""
    import subprocess
    import sys
    code = f"""
import threading, numpy as np, shoal
rt = shoal.Runtime(shoal.compile({str(digits_model)!r}, shape="8x8x1"))
rt.queue_capacity = 1
x = np.load({str(digits_model.parent / "heldout_x.npy")!r})[:1].astype(np.float32)
rt.put(x)
def stuck():
    try:
        rt.put(x)
    except shoal.InvalidArgumentError:
        pass
threading.Thread(target=stuck).start()
"""
    env = dict(os.environ, PYTHONPATH=str(build_dir / "python"))
    res = subprocess.run([sys.executable, "-c", code], env=env, timeout=60,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
