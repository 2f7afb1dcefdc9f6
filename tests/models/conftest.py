from .helpers import adapter, offline_hub, one_cpu_thread, plain_model, tiny_checkpoint  # noqa: F401  (fixtures)
