"""Scale out on ``tf.distribute``: the strategy of ``--distribute``, logical CPU devices, the chief.

What a strategy synchronises (data-parallel, synchronous): every replica holds the same weights; each
step, the global batch (``--batch_size``) is split over the replicas, each replica computes gradients
on its share, the gradients are summed across replicas (an all-reduce) and every replica applies the
same update. Keras divides its own losses by the number of replicas so that this sum is the gradient of
the global-batch mean (hand-written losses use :func:`batch_share`); Keras metrics are reduced across
replicas. State a family updates by hand inside its train step (TTFS window widths) must be reduced
explicitly: see :func:`replica_max`.

Training and evaluation under a strategy run in :func:`fit` / :func:`evaluate`: the family's own
``train_step`` / ``test_step`` inside ``strategy.run`` in a ``tf.function`` on each replica's rows of every
global batch, driven by Keras callbacks. Keras 3's ``fit`` cannot do this itself: under ``MultiWorkerMirroredStrategy``
its symbolic build reduces the first batch's ``(x, y)`` tuple and fails (keras-team/keras#20585; measured
with Keras 3.15 / TF 2.21), and under any strategy it draws that batch from a fresh iterator, which moves
a seeded reshuffling pipeline on by one permutation. Outside a strategy both call Keras' own ``fit`` /
``evaluate``, except that on stacks of batches (``steps_per_element``) :func:`fit` runs each stack's
steps in one compiled call (``--steps_per_execution`` of the TTFS family). Two optional model hooks:
``prepare_global_batch(batch, training)`` runs in cross-replica context on each global batch before
it is split (randomness drawn per global batch, as one device draws it: the DDIM's noise), and ``optimized_variables`` names the variables the optimizer updates when that is not
all trainable variables.

Multi-worker runs: only the chief writes the run's record and artifacts; every other worker works in a
temporary folder that starts as a copy of the chief's state (:func:`worker_folder`), so an interrupted
run resumes at the same epoch on every worker (this needs a filesystem the workers share, as TensorFlow's
own multi-worker checkpoints do).

TensorFlow is imported inside functions, so that the CLI stays instant.
"""

import os
import shutil
import weakref

from tfspike.errors import UserError

KINDS = ("none", "mirrored", "multi_worker")


def cluster_source():
    """Where a ``multi_worker`` run finds its cluster: ``"TF_CONFIG"``, ``"slurm"`` (``SLURM_JOB_ID`` set,
    no ``TF_CONFIG``) or None. Reads only the environment (no TensorFlow)."""
    if os.environ.get("TF_CONFIG"):
        return "TF_CONFIG"
    if os.environ.get("SLURM_JOB_ID"):
        return "slurm"
    return None


def check_kind(kind):
    """Raise a one-line :class:`UserError` if ``kind`` is not a strategy name, or is ``multi_worker``
    without a cluster to join (no TensorFlow)."""
    if kind not in KINDS:
        raise UserError(f"--distribute must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "multi_worker" and cluster_source() is None:
        raise UserError("--distribute=multi_worker needs a cluster: set TF_CONFIG (see README, Scale out) "
                        "or run under Slurm (SLURM_JOB_ID)")


def split_cpu(n):
    """Split the physical CPU into ``n`` logical devices (``/cpu:0`` … ``/cpu:{n-1}``), so a CPU-only
    machine can run the ``mirrored`` path.

    Must run before TensorFlow initialises its devices (before the first op, device listing or
    strategy). Calling it again with the same ``n`` is a no-op.

    Args:
        n: the number of logical CPU devices (>= 1).

    Returns:
        the logical CPU devices' names.

    Raises:
        UserError: TensorFlow's devices are already initialised with another layout (one line).
    """
    import tensorflow as tf

    if n < 1:
        raise UserError(f"--cpu_devices must be >= 1, got {n}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == n:
        return [d.name for d in tf.config.list_logical_devices("CPU")]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:
        raise UserError(f"--cpu_devices={n}: TensorFlow's devices are already initialised; split the CPU "
                        f"before anything runs on TensorFlow (at the start of the process)") from None
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def make_strategy(kind, cpu_devices=None):
    """The ``tf.distribute`` strategy of ``--distribute``.

    Args:
        kind: ``"none"`` → the default strategy (``tf.distribute.get_strategy()``, one device);
            ``"mirrored"`` → ``tf.distribute.MirroredStrategy`` over the local GPUs, or with
            ``cpu_devices=N`` over N logical CPU devices (:func:`split_cpu`); ``"multi_worker"`` →
            ``tf.distribute.MultiWorkerMirroredStrategy`` with the cluster of ``TF_CONFIG``, or of
            ``tf.distribute.cluster_resolver.SlurmClusterResolver()`` under Slurm without ``TF_CONFIG``.
        cpu_devices: split the CPU into this many logical devices first (None: leave it as it is).

    Returns:
        a ``tf.distribute.Strategy``; build and compile models inside ``strategy.scope()``.

    Raises:
        UserError: an unknown kind, ``multi_worker`` without a cluster, or a CPU split that comes too late.
    """
    check_kind(kind)
    if cpu_devices:
        split_cpu(cpu_devices)
    import tensorflow as tf

    if kind == "none":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        if cpu_devices and not tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(cpu_devices)])
        return tf.distribute.MirroredStrategy()
    if cluster_source() == "TF_CONFIG":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.MultiWorkerMirroredStrategy(
        cluster_resolver=tf.distribute.cluster_resolver.SlurmClusterResolver())


def barrier(strategy):
    """Wait until every worker of ``strategy`` gets here (an all-reduce of one number); no-op for a
    single-process strategy."""
    if not is_multi_worker(strategy):
        return
    import tensorflow as tf

    strategy.reduce("SUM", strategy.run(lambda: tf.ones([])), axis=None)


def is_multi_worker(strategy):
    """True for a ``MultiWorkerMirroredStrategy`` spanning more than one worker."""
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    return sum(len(v) for k, v in spec.items() if k in ("chief", "worker")) > 1


def worker_folder(strategy, logging_dir, name):
    """The logging folder of this process: ``logging_dir`` for the chief (and for single-process runs);
    for any other worker a fresh temporary folder (removed at exit) holding a copy of the chief's files of
    this run — ``backup/<name>*`` and ``<name>*`` — so that it resumes from the chief's state. The copy is
    made between two barriers: after the chief has prepared its folder, before it goes on."""
    if is_chief(strategy):
        barrier(strategy)
        barrier(strategy)
        return logging_dir
    import atexit
    import tempfile

    resolver = strategy.cluster_resolver
    folder = tempfile.mkdtemp(prefix=f"tfspike-{resolver.task_type}{resolver.task_id}-")
    atexit.register(shutil.rmtree, folder, True)
    barrier(strategy)  # the chief has cleared or kept its backup
    chief = os.path.abspath(logging_dir)
    for sub in ("backup", ""):
        src_dir = os.path.join(chief, sub)
        for entry in sorted(os.listdir(src_dir)) if os.path.isdir(src_dir) else ():
            src, dst = os.path.join(src_dir, entry), os.path.join(folder, sub, entry)
            if not entry.startswith(name):
                continue
            if os.path.isdir(src) and sub:
                shutil.copytree(src, dst, dirs_exist_ok=True)
            elif os.path.isfile(src):
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copy2(src, dst)
    barrier(strategy)
    return folder


def is_chief(strategy):
    """True in the process that writes results, plots, logs and checkpoints: a single-process strategy,
    or the chief (worker 0 when the cluster has no chief task) of a multi-worker one."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in (resolver.cluster_spec().as_dict() or {})
    return task_type == "worker" and task_id == 0 and not has_chief


def num_replicas():
    """Replicas in sync of the current strategy (1 outside any strategy)."""
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def synchronized_batch_norm():
    """Whether a BatchNormalization built now should use ``synchronized=True``: under a strategy with more than
    one replica, so that a training step normalises with the statistics of the global batch, as one device
    does (every family that trains BatchNorm builds it this way: the ReLU VGG_BN twins, the DDIM's U-Net)."""
    return num_replicas() > 1


def batch_share(batch_size):
    """This replica's share ``n_r / Σ n`` of the global batch (a float32 scalar; 1 outside a strategy with
    several replicas), for hand-written losses and loss metrics in a ``train_step`` / ``test_step``.

    A per-replica loss that is a mean over the replica's ``n_r`` samples, multiplied by its share, sums over
    the replicas (the all-reduce of the gradients) to the mean over the global batch — also when a partial
    last batch splits unevenly (Keras divides its own losses by the number of replicas instead, which is
    exact for equal shares only). A loss metric updated with ``sample_weight=share`` gains one value per
    global batch, as on one device.
    """
    import tensorflow as tf

    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return tf.constant(1.0)
    n = tf.cast(batch_size, tf.float32)
    return n / ctx.all_reduce("SUM", n)


def replica_max(value):
    """The maximum of ``value`` (a tensor of any shape) over all replicas, elementwise, inside a replica
    context of a strategy with several replicas; ``value`` itself otherwise.

    ``tf.distribute.ReduceOp`` has only SUM and MEAN, so this gathers every replica's value
    (``ReplicaContext.all_gather``) and takes the max: the same result on every replica.
    """
    import tensorflow as tf

    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return value
    return tf.reduce_max(ctx.all_gather(tf.expand_dims(value, 0), axis=0), axis=0)


# -- training and evaluation under a strategy --------------------------------------------------------

def is_distributed(model):
    """True when ``model`` was built under a strategy with more than one replica (then :func:`fit` and
    :func:`evaluate` run tfspike's distributed loop instead of Keras')."""
    return model.distribute_strategy.num_replicas_in_sync > 1


class _EpochBatches:
    """The global batches of ``dataset`` epoch by epoch, drawn from its iterators exactly as Keras 3's epoch
    iterator draws them on one device, so that a seeded reshuffle gives the batches of ``model.fit``.

    Without ``steps_per_epoch`` every epoch opens a fresh iterator, and so does the end of an epoch that used
    up the dataset: a seeded reshuffle therefore skips one permutation per epoch (tests/test_distribute.py pins
    this against ``model.fit``). With ``steps_per_epoch`` one iterator carries over from epoch to epoch, an
    epoch stops early where the dataset ends, and the next epoch starts on a fresh iterator.

    Every worker iterates ``dataset`` itself and keeps its replicas' rows of each global batch (sharding by
    data, as ``tf.data``'s ``AutoShardPolicy.DATA`` does for in-memory data). Unlike
    ``strategy.experimental_distribute_dataset`` (which rebuilds the pipeline, and with it the state of a
    seeded reshuffle), the global batches are exactly those that one device sees.
    """

    def __init__(self, dataset, steps_per_epoch=None):
        self.dataset, self.steps_per_epoch = dataset, steps_per_epoch
        n = int(dataset.cardinality())
        self.num_batches = n if n > 0 else None
        self.iterator, self.seen = None, 0

    @property
    def steps(self):
        """Steps per epoch for the progress bar (None: unknown)."""
        return self.steps_per_epoch or self.num_batches

    def epoch(self):
        steps = self.steps
        if not steps:  # unknown length (not a pipeline tfspike builds): one iterator per epoch, to its end
            yield from self.dataset
            return
        if self.iterator is None or self.steps_per_epoch is None:
            self.iterator, self.seen = iter(self.dataset), 0
        for _ in range(steps):
            if self.num_batches and self.seen >= self.num_batches:
                break
            self.seen += 1
            try:
                batch = next(self.iterator)
            except StopIteration:
                self.iterator = None
                return
            yield batch
        if self.num_batches and self.seen >= self.num_batches:
            self.iterator, self.seen = iter(self.dataset), 0


def _replica_rows(batch):
    """This replica's rows of a global batch (inside ``strategy.run``): replica r of n (in sync, over all
    workers) gets rows [⌊r·b/n⌋, ⌊(r+1)·b/n⌋) of a batch of b rows."""
    import tensorflow as tf

    ctx = tf.distribute.get_replica_context()
    r, n = ctx.replica_id_in_sync_group, ctx.num_replicas_in_sync

    def cut(t):
        b = tf.shape(t)[0]
        return t[(r * b) // n:((r + 1) * b) // n]

    return tf.nest.map_structure(cut, batch)


_STEP_FUNCTIONS = weakref.WeakKeyDictionary()  # model -> {"built": its compile, "train"/"test": its traced step}


def _build_state(model, dataset, stacked=False):
    """Create the optimizer's and the compiled loss/metrics' variables in cross-replica context, from one
    zero batch shaped like ``dataset``'s elements (``stacked``: like one batch of its stacks): variables
    cannot be created inside ``strategy.run`` or a loop. (Drawing a real batch would start an extra
    iterator and move a seeded reshuffle on.)"""
    import tensorflow as tf

    state = _STEP_FUNCTIONS.setdefault(model, {})
    compiled = (id(model.optimizer), id(getattr(model, "loss", None)))  # a recompiled model builds again
    if state.get("built") == compiled:
        return
    state.clear()  # traced steps of an earlier compile hold its optimizer
    skip = 2 if stacked else 1
    batch = tf.nest.map_structure(lambda spec: tf.zeros([1] + list(spec.shape[skip:]), spec.dtype),
                                  dataset.element_spec)
    x, y = (batch[0], batch[1]) if isinstance(batch, (tuple, list)) else (batch, None)
    compiled_loss = y is not None and getattr(model, "loss", None) is not None
    with model.distribute_strategy.scope():
        if compiled_loss or not model.built:  # an eager pass: cheap for one sample, once per model
            y_pred = model(x, training=False)
            if compiled_loss:  # the compiled loss and metrics create their variables on first use
                model.compute_loss(x, y, y_pred, training=False)
                model.compute_metrics(x, y, y_pred, None)
        if model.optimizer is not None and not model.optimizer.built:
            # a model that optimises only part of its weights (the DDIM: not its EMA copy) names them
            model.optimizer.build(getattr(model, "optimized_variables", model.trainable_variables))
    model.reset_metrics()
    state["built"] = compiled


def _floats(logs):
    return {k: float(v) for k, v in logs.items()}


def _step_function(model, kind):
    """``global batch -> metrics``: the model's ``prepare_global_batch(batch, training)`` if it has one (in
    cross-replica context: e.g. the DDIM draws its noise for the whole global batch there, so that every
    replica's rows get the noise one device would draw for them), then ``model.train_step`` / ``test_step``
    (``kind``) on every replica's rows inside ``strategy.run``, then the model's metrics read in cross-replica
    context — sums over all replicas (Keras metric variables are sync-on-read sums), so the logged values
    are those of the global batch — under the keys the step returns. Traced once per model."""
    functions = _STEP_FUNCTIONS.setdefault(model, {})
    if kind not in functions:
        import tensorflow as tf

        strategy, step = model.distribute_strategy, getattr(model, f"{kind}_step")
        prepare = getattr(model, "prepare_global_batch", None)

        @tf.function
        def run(batch):
            if prepare is not None:
                batch = prepare(batch, training=kind == "train")
            logs = strategy.run(lambda b: step(_replica_rows(b)), args=(batch,))
            results = model.get_metrics_result()
            # the keys the step reports (as Keras' fit shows them), each its metric read across the replicas
            return {k: results[k] for k in logs if k in results} if isinstance(logs, dict) else results

        functions[kind] = run
    return functions[kind]


def _stacked_step_function(model):
    """``stack of batches -> metrics``: ``model.train_step`` on each batch of a stack (leading axis), in
    order, in one ``tf.function`` (XLA-compiled when the model was compiled with ``jit_compile=True``), so
    the per-step cost of a Keras step — a compiled call, the variables' handles, an iterator read — is
    paid once per stack. Each step is the model's own, so the updates are those of one step per batch.
    Traced once per model and stack shape."""
    functions = _STEP_FUNCTIONS.setdefault(model, {})
    if "stacked" not in functions:
        import tensorflow as tf

        step = model.train_step

        @tf.function(jit_compile=bool(model.jit_compile), reduce_retracing=True)
        def run(stack):
            count = tf.shape(tf.nest.flatten(stack)[0])[0]

            def batch(i):
                return tf.nest.map_structure(lambda t: t[i], stack)

            def body(i):
                step(batch(i))
                return (i + 1,)

            (last,) = tf.while_loop(lambda i: i < count - 1, body, (tf.constant(0),))
            return step(batch(last))  # automatic control dependencies order it after the loop's updates

        functions["stacked"] = run
    return functions["stacked"]


def predict(model, dataset):
    """``model.predict(dataset)`` (NumPy); for a model of a strategy with several replicas, the model's
    forward pass on this process, batch by batch (no collective: every worker holds the same weights)."""
    if not is_distributed(model):
        return model.predict(dataset, verbose=0)
    import numpy as np
    import tensorflow as tf

    forward = tf.function(lambda x: model(x, training=False))
    return np.concatenate([np.asarray(forward(x[0] if isinstance(x, tuple) else x)) for x in dataset])


def evaluate(model, dataset, verbose=0, steps=None):
    """``model.evaluate(dataset, steps=steps, return_dict=True)`` (floats); under a strategy with several
    replicas, the model's ``test_step`` on each replica's rows of the first ``steps`` global batches (all:
    None), with metrics reduced over all replicas."""
    if not is_distributed(model):
        return _floats(model.evaluate(dataset, steps=steps, verbose=verbose, return_dict=True))
    _build_state(model, dataset)
    run = _step_function(model, "test")
    model.reset_metrics()
    logs = {}
    for batch in _EpochBatches(dataset, steps).epoch():
        logs = run(batch)
    return _floats(logs)


def fit(model, dataset, *, epochs, validation_data=None, callbacks=None, verbose=1, steps_per_epoch=None,
        validation_steps=None, steps_per_element=1, **kwargs):
    """``model.fit(dataset, ...)``; under a strategy with several replicas, or on stacks of batches
    (``steps_per_element`` > 1), tfspike's own loop.

    The loop follows Keras' ``fit`` step by step: the callbacks' hooks in the same order (so
    ``BackupAndRestore``, ``TerminateOnNaN``, ``TensorBoard``, checkpoints and learning-rate schedules work
    unchanged; a restored backup sets the first epoch), ``model.train_step`` on each replica's share of every
    global batch (``strategy.run`` in a ``tf.function``), metrics reset each epoch and reduced over all
    replicas, validation after each epoch (``val_`` logs). The global batches are drawn from ``dataset`` as
    Keras draws them (:class:`_EpochBatches`), so a seeded reshuffle gives the same batches as on one device.
    Returns a ``History``.

    With ``steps_per_element`` > 1 (one device only) every element of ``dataset`` is a stack of up to that
    many batches (``make_dataset(steps_per_element=...)``), trained in one compiled call
    (:func:`_stacked_step_function`): the same steps as one per batch, without Keras' per-step overhead.
    Callbacks then see one batch per stack, as Keras' ``steps_per_execution`` shows them every that many
    steps, and ``steps_per_epoch`` counts stacks.

    Args:
        model: a compiled Keras model (built under the strategy's scope for a distributed run).
        dataset: a ``tf.data.Dataset`` of global batches ``(x, y)``, or of stacks of them.
        epochs, validation_data, callbacks, verbose, steps_per_epoch, validation_steps: as for
            ``keras.Model.fit``.
        steps_per_element: batches per element of ``dataset`` (1: plain batches).
        **kwargs: passed to ``model.fit`` (one device, plain batches: ``shuffle``...); tfspike's loop accepts
            only ``shuffle=False``.
    """
    stacked = steps_per_element > 1
    if stacked and is_distributed(model):
        raise UserError("tfspike.distribute.fit: steps_per_element > 1 runs on one device only")
    if not is_distributed(model) and not stacked:
        return model.fit(dataset, epochs=epochs, validation_data=validation_data, callbacks=callbacks,
                         verbose=verbose, steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
                         **kwargs)
    import keras

    from tfspike.utils.callbacks import backup_epoch

    if kwargs and set(kwargs) != {"shuffle"} or kwargs.get("shuffle", False):
        raise UserError(f"tfspike.distribute.fit: {sorted(kwargs)} are not supported in tfspike's loop "
                        f"(shuffle the tf.data pipeline instead)")
    callbacks = list(callbacks or [])
    history = keras.callbacks.History()
    batches = _EpochBatches(dataset, steps_per_epoch)
    hooks = keras.callbacks.CallbackList(callbacks + [history], add_progbar=verbose != 0, model=model,
                                         verbose=verbose, epochs=epochs, steps=batches.steps)
    _build_state(model, dataset, stacked=stacked)
    run = _stacked_step_function(model) if stacked else _step_function(model, "train")
    model.stop_training = False
    hooks.on_train_begin()
    # BackupAndRestore restored the weights in on_train_begin; its metadata says how many epochs were done
    restored = [backup_epoch(cb.backup_dir) for cb in callbacks if isinstance(cb, keras.callbacks.BackupAndRestore)]
    first = max([e for e in restored if e] or [0])
    epoch_logs = {}
    for epoch in range(first, epochs):
        model.reset_metrics()
        hooks.on_epoch_begin(epoch)
        logs = {}
        for step, batch in enumerate(batches.epoch()):
            hooks.on_train_batch_begin(step)
            logs = _floats(run(batch))
            hooks.on_train_batch_end(step, logs)
            if model.stop_training:
                break
        epoch_logs = dict(logs)
        if validation_data is not None:
            epoch_logs.update({f"val_{k}": v for k, v in evaluate(model, validation_data, steps=validation_steps).items()})
        hooks.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    hooks.on_train_end(logs=epoch_logs)
    return history
