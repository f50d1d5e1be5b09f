#!/usr/bin/env python
"""tfspike command line: parses flags and dispatches to the family of ``--model_type``.

    python main.py --model_type=SNN --model_name=FC2_example_train --data_name=MNIST --epochs=1
    python main.py --model_type=FS --activation=swish --K=8 --init=tbpi
    python main.py --model_type=BRF --data_name=ECG
    python main.py --model_type=DDIM --activation=fs_swish --fs_params=tbpi --data_name=FMNIST

``python main.py --model_type=<TYPE> --help`` lists the flags of a family (the common flags first).
"""

import sys

from tfspike.cli import main

if __name__ == "__main__":
    sys.exit(main())
