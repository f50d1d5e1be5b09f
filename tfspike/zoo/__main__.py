"""``python -m tfspike.zoo [--markdown]``: the preset table (``--markdown``: the README's zoo table)."""

import sys

from tfspike.zoo.registry import presets_table

if __name__ == "__main__":
    print(presets_table(markdown="--markdown" in sys.argv[1:]))
