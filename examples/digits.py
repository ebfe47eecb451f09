"""Train a spiking network on scikit-learn's digits and export it: the demo as a script.

    .venv/bin/python examples/digits.py --out nmcompile-demo
"""

import argparse

from nmcompile.demo import run_demo

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="nmcompile-demo")
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    run_demo(args.out, epochs=args.epochs)
