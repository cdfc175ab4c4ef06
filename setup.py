"""vidsme: one distribution, one import namespace.

The stage folders live at the top of the repository (train/, attack/, benchmark/)
so a newcomer finds them by name, but they install under the `vidsme` namespace:
nothing generic like `attack` ever lands in site-packages.
"""
from setuptools import setup

PACKAGES = {
    "vidsme": "vidsme",  # the namespace root: what every stage shares; imports no stage
    "vidsme.attack": "attack",
    "vidsme.attack.attacks": "attack/attacks",
    "vidsme.attack.calibrations": "attack/calibrations",
    "vidsme.data_splits": "data_splits",
    "vidsme.train": "train",
    "vidsme.benchmark": "benchmark",
    "vidsme.benchmark.submissions": "benchmark/submissions",
    "vidsme.challenge": "challenge",
    "vidsme.study": "study",
    "vidsme.cli": "cli",  # on top: one module per subcommand
}

setup(
    name="vidsme",
    version="0.1.0",
    description="Benchmark and target-training pipeline for membership inference "
    "attacks against video-understanding LLMs (Vid-SME and baselines).",
    python_requires=">=3.10",
    packages=list(PACKAGES),
    package_dir=PACKAGES,
    # Ranges here; the exact torch/torchvision pins live in scripts/constraints.txt,
    # which the Makefile, CI and docker image all install through.
    install_requires=[
        "torch>=2.4",
        "numpy>=1.26",
        "pyyaml>=6.0",
        "tqdm>=4.66",
        # video: decord is the reader of choice where it has wheels; PyAV reads the same
        # frames everywhere else and encodes the synthetic mp4s; OpenCV computes optical flow
        "decord>=0.6; sys_platform == 'linux' and platform_machine == 'x86_64'",
        "av>=12",
        "opencv-python-headless>=4.8",
        "scikit-learn>=1.4",
        "matplotlib>=3.8",  # benchmark plots (ROC, histograms)
        # target models
        "transformers>=5.0",
        "tokenizers>=0.20",
        "safetensors>=0.4",
        "peft>=0.13",
        "accelerate>=1.0",
        "deepspeed>=0.15",
    ],
    extras_require={
        "test": ["pytest>=8.0", "ruff>=0.5", "datasets>=2.19"],
    },
    # The committed splits (paper-*) ship with the package.
    package_data={"vidsme.data_splits": ["*/manifest.jsonl", "*/card.json"]},
    entry_points={"console_scripts": ["vidsme = vidsme.cli:main"]},
)
