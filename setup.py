"""Ships the top-level `avro/` contract inside the wheel as the data package `consumer._avro`.

`avro/` stays the source of truth at the top of the repository (schemagen writes it, people
read it); mapping a folder into a package is the one thing pyproject.toml cannot express.
Everything else about the build is in pyproject.toml.
"""

from pathlib import Path

from setuptools import find_packages, setup

DATA = ("*.avsc", "*.json", "*.md")
# Each folder of avro/ is a data-only package, so new result records or folders ship too.
folders = sorted({p.parent.relative_to("avro").as_posix() for p in Path("avro").rglob("*") if p.is_file()})
avro_packages = ["consumer._avro" + ("" if f == "." else "." + f.replace("/", ".")) for f in folders]

setup(
    packages=[*find_packages(include=["consumer", "consumer.*"]), *avro_packages],
    package_dir={"consumer._avro": "avro"},
    package_data={p: list(DATA) for p in avro_packages},
)
