"""Ships the top-level `avro/` contract inside the wheel as the data package `consumer._avro`,
and Voucherify's reference data (`consumer/devtools/data/`: the example payloads the demo sends,
the OpenAPI facts that schemagen reads) as data-only packages beside the code.

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
# Each folder of consumer/devtools/data/ that holds files is a data-only package too.
DEVTOOLS_DATA = Path("consumer/devtools/data")
data_packages = sorted({".".join(p.parent.parts) for p in DEVTOOLS_DATA.rglob("*") if p.is_file()})

setup(
    packages=[*find_packages(include=["consumer", "consumer.*"]), *avro_packages, *data_packages],
    package_dir={"consumer._avro": "avro"},
    package_data={p: list(DATA) for p in (*avro_packages, *data_packages)},
)
