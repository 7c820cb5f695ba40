"""gRPC end to end through the gateway (backend-protocol = h2): a grpcio client with a client
certificate (grpc.ssl_channel_credentials) -> twoway gateway -> an insecure (h2c) grpcio server
that answers with the identity the gateway forwarded in the call's metadata. Unary,
server-streaming, client-streaming and bidi calls; a deadline and a cancellation that reach the
backend; a revoked client cut off with GOAWAY. Messages are raw bytes (no generated code)."""

import base64
import threading
import time
from concurrent import futures

import pytest
from cryptography.hazmat.primitives import serialization

grpc = pytest.importorskip("grpc")

from gateway_helpers import Gateway, MiniPki, free_port  # noqa: E402

SVC = "/twoway.test.Echo/"


class Backend:
    def __init__(self):
        self.cancelled = threading.Event()
        self.deadline_seen = threading.Event()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        handlers = {
            "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
            "Stream": grpc.unary_stream_rpc_method_handler(self.stream),
            "Collect": grpc.stream_unary_rpc_method_handler(self.collect),
            "Bidi": grpc.stream_stream_rpc_method_handler(self.bidi),
            "Slow": grpc.unary_unary_rpc_method_handler(self.slow),
            "Forever": grpc.unary_stream_rpc_method_handler(self.forever),
        }
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("twoway.test.Echo", handlers),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @staticmethod
    def identity(context):
        md = dict(context.invocation_metadata())
        return md.get("client-cert", "none").encode()

    def unary(self, request, context):
        return b"hello " + request + b" from " + self.identity(context)

    def stream(self, request, context):
        for i in range(5):
            yield b"%d:" % i + request

    def collect(self, it, context):
        return b"|".join(it) + b" " + self.identity(context)

    def bidi(self, it, context):
        for m in it:
            yield b"echo " + m

    def watch(self, context):
        """Set self.cancelled when grpc ends the call before the handler finished it (a
        cancellation or a deadline). The end is taken from grpc's termination callback, not
        from the handler polling is_active(): grpcio stops resuming a streaming handler's
        generator when the cancellation lands while one of its messages is being sent
        (grpc/_server.py, _send_message_callback_to_blocking_iterator_adapter), so a
        generator's own check misses about one cancellation in three. Returns the function
        the handler calls when it finishes normally."""
        finished = threading.Event()
        context.add_callback(lambda: None if finished.is_set() else self.cancelled.set())
        return finished.set

    def slow(self, request, context):
        finished = self.watch(context)
        if context.time_remaining() is not None:
            self.deadline_seen.set()
        for _ in range(100):
            if not context.is_active():
                break
            time.sleep(0.05)
        finished()
        return b"late"

    def forever(self, request, context):
        finished = self.watch(context)
        for i in range(1000):
            if not context.is_active():
                return
            yield b"tick %d" % i
            time.sleep(0.05)
        finished()

    def stop(self):
        self.server.stop(0)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("gw-grpc")
    e = type("Env", (), {})()
    e.root = MiniPki(d / "root")
    e.inter = MiniPki(d / "inter", name="gRPC Test Intermediate", parent=e.root)
    e.server = e.root.server()
    e.alice = e.inter.issue("alice")  # sends its intermediate along
    e.bob = e.root.issue("bob")
    # the whole-chain trust layout: client-ca holds root and intermediate, a CRL for each
    bundle = d / "client-ca.pem"
    bundle.write_bytes(e.root.ca_path.read_bytes() + e.inter.ca_path.read_bytes())
    e.crl, inter_crl = d / "root.crl", d / "inter.crl"
    e.root.write_crl(e.crl)
    e.inter.write_crl(inter_crl)
    e.backend = Backend()
    e.port = free_port()
    e.gw = Gateway(["--listen", f"127.0.0.1:{e.port}", "--backend",
                    f"127.0.0.1:{e.backend.port}", "--backend-protocol", "h2",
                    "--cert", e.server.cert_path, "--key", e.server.key_path,
                    "--client-ca", bundle, "--crl", e.crl, "--crl", inter_crl,
                    "--workers", "1"])
    yield e
    rc = e.gw.stop()
    e.backend.stop()
    assert rc == 0, e.gw.output()


def channel(env, who):
    creds = grpc.ssl_channel_credentials(
        root_certificates=env.root.ca_path.read_bytes(),
        private_key=who.key_path.read_bytes(),
        certificate_chain=who.cert_path.read_bytes())
    return grpc.secure_channel(f"127.0.0.1:{env.port}", creds,
                               options=[("grpc.ssl_target_name_override", "localhost")])


def b64(cert):
    return base64.b64encode(cert.cert.public_bytes(serialization.Encoding.DER)).decode()


def test_unary_carries_identity_and_spoof_is_stripped(env):
    with channel(env, env.alice) as ch:
        call = ch.unary_unary(SVC + "Unary")
        out = call(b"world", timeout=10, metadata=[("client-cert", ":c3Bvb2Y=:")])
    assert out == f"hello world from :{b64(env.alice)}:".encode()


def test_server_streaming(env):
    with channel(env, env.alice) as ch:
        out = list(ch.unary_stream(SVC + "Stream")(b"x", timeout=10))
    assert out == [b"0:x", b"1:x", b"2:x", b"3:x", b"4:x"]


def test_client_streaming(env):
    with channel(env, env.alice) as ch:
        out = ch.stream_unary(SVC + "Collect")(iter([b"a", b"b" * 100000, b"c"]), timeout=10)
    head, _, ident = out.partition(b" ")
    assert head == b"a|" + b"b" * 100000 + b"|c"
    assert ident == f":{b64(env.alice)}:".encode()


def test_bidi_streaming(env):
    with channel(env, env.alice) as ch:
        out = list(ch.stream_stream(SVC + "Bidi")(iter([b"%d" % i for i in range(50)]),
                                                  timeout=10))
    assert out == [b"echo %d" % i for i in range(50)]


def test_many_calls_in_parallel_on_one_channel(env):
    with channel(env, env.alice) as ch:
        call = ch.unary_unary(SVC + "Unary")
        futs = [call.future(b"%d" % i, timeout=20) for i in range(50)]
        outs = [f.result() for f in futs]
    assert all(o.startswith(b"hello %d from :" % i) for i, o in enumerate(outs))


def test_deadline_reaches_backend_and_expires(env):
    env.backend.cancelled.clear()
    with channel(env, env.alice) as ch:
        with pytest.raises(grpc.RpcError) as exc:
            ch.unary_unary(SVC + "Slow")(b"x", timeout=1)
    assert exc.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert env.backend.deadline_seen.is_set()  # grpc-timeout crossed the gateway
    assert env.backend.cancelled.wait(10)      # and the backend call ended with it


def test_cancellation_reaches_backend(env):
    env.backend.cancelled.clear()
    with channel(env, env.alice) as ch:
        it = ch.unary_stream(SVC + "Forever")(b"x", timeout=30)
        assert next(it) == b"tick 0"
        it.cancel()
        assert env.backend.cancelled.wait(10)


def test_revoked_client_is_cut_with_goaway(env):
    with channel(env, env.bob) as ch:
        it = ch.unary_stream(SVC + "Forever")(b"x", timeout=60)
        assert next(it) == b"tick 0"
        env.root.write_crl(env.crl, [env.bob.serial])
        env.gw.wait_line(r"reload: generation \d+ serving", timeout=10)
        with pytest.raises(grpc.RpcError) as exc:
            for _ in it:
                pass
        assert exc.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL)
    # alice is not revoked and is still served
    with channel(env, env.alice) as ch:
        assert ch.unary_unary(SVC + "Unary")(b"again", timeout=10).startswith(b"hello again")
