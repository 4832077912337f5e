import io
import threading

from sluice.read.readers.throttle import Throttled


def test_reads_wait_while_too_many_blocks_are_unconsumed() -> None:
    stream = Throttled(io.BytesIO(b"x" * 100), block_size=10, ahead=2, wait_s=30)
    assert stream.read(10) == b"x" * 10
    assert stream.read(10) == b"x" * 10  # two blocks ahead: the window is full now
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(stream.read(10)))
    reader.start()
    reader.join(timeout=0.3)
    assert reader.is_alive() and not got  # waiting for the consumer

    stream.took_batch()

    reader.join(timeout=5)
    assert got == [b"x" * 10]


def test_a_wait_is_bounded_in_time_so_a_long_record_cannot_deadlock() -> None:
    stream = Throttled(io.BytesIO(b"abc" * 10), block_size=1, ahead=1, wait_s=0.01)
    assert stream.read() == b"abc" * 10  # no batch is ever taken; every wait times out
