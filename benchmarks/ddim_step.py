"""DDIM training-step and sampling time, swish vs FS-Swish U-Net (XLA, synthetic 32×32×1 data).

    python benchmarks/ddim_step.py --widths 16,32,48,64 --batch_size 64 --steps 20

Prints one line per measurement: activation, widths, batch, seconds per training step (median of
``--steps`` after ``--warmup`` compiled steps), seconds per 5-step DDIM sampling call of one batch.
Timings on a shared CPU are noisy; compare runs taken back to back.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--widths", default="16,32,48,64")
    p.add_argument("--block_depth", type=int, default=2)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--image_size", type=int, default=32)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--activations", default="swish,fs_swish")
    args = p.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    from tfspike.ddim.diffusion import DiffusionModel

    widths = [int(w) for w in args.widths.split(",")]
    x = np.random.default_rng(0).random((args.batch_size, args.image_size, args.image_size, 1)).astype("float32")
    ds = tf.data.Dataset.from_tensors(x).repeat().prefetch(tf.data.AUTOTUNE)
    for activation in args.activations.split(","):
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        model = DiffusionModel(args.image_size, 1, widths, args.block_depth, activation, "published", seed=0)
        model.normalizer.adapt(x)
        model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=1e-4), jit_compile=True)
        times = []

        class StepTimer(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                self.t = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                float(logs["n_loss"])  # wait for the step
                times.append(time.perf_counter() - self.t)

        model.fit(ds, epochs=1, steps_per_epoch=args.warmup + args.steps, callbacks=[StepTimer()], verbose=0)
        times = times[args.warmup:]  # the first steps include XLA compilation
        noise = np.random.default_rng(1).standard_normal(x.shape).astype("float32")
        model.generate(args.batch_size, 5, initial_noise=noise).numpy()
        samp = []
        for _ in range(3):
            t = time.perf_counter()
            model.generate(args.batch_size, 5, initial_noise=noise).numpy()
            samp.append(time.perf_counter() - t)
        print(f"ddim {activation:8s} widths={args.widths} depth={args.block_depth} batch={args.batch_size} "
              f"S={args.image_size}: train_step {statistics.median(times):.3f} s/step, "
              f"sample(5 steps) {statistics.median(samp):.3f} s/batch", flush=True)


if __name__ == "__main__":
    main()
