#!/usr/bin/env bash
# Issue 17 on a quiet 2-core slice of the GPU machine (no GPU used): the cycle's p99 with the
# three publishers on against off (python -m aoi.app.plant.bench), and the same layout with
# them off in both arms (--aa: the slice's own spread). The station runs on cores 0-1
# (taskset); its publishers' process shares them, or runs on core 2 ([plant] cpus); mosquitto
# and the AMQP 1.0 peer run on cores 4-7 (the plant's brokers are other machines). Carry: data/h-g15d (station wheels), data/h-plant (mosquitto
# and its libraries from the sandbox's Debian, plant wheels). Results: $OUT.
#   run: carry ["data/h-g15d/whl", "data/h-plant"], command: bash tools/plant/bench-device.sh [CYCLES [CYCLES_AA [RUNS]]]
set -u
export PYTHONUNBUFFERED=1
N=${1:-2000}; NAA=${2:-1500}
T0=$(date +%s); t() { echo "[t+$(( $(date +%s) - T0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site \
  data/h-g15d/whl/*.whl data/h-plant/whl/*.whl || exit 3
export PYTHONPATH=$PWD:/tmp/site PATH=$PWD/data/h-plant/bin:$PATH
nproc; lscpu | grep -i "model name"; date -u
python3 -c "import onnxruntime, proton, paho.mqtt, asyncua; print('ort', onnxruntime.__version__)" || exit 4
W=/tmp/plant; mkdir -p $W
printf 'listener 1884 127.0.0.1\nallow_anonymous true\nuser root\n' > $W/mosq.conf
taskset -c 4,5 mosquitto -c $W/mosq.conf 2>/dev/null &
python3 -c 'from aoi.app.plant.bench import _PEER; print(_PEER)' > $W/peer.py
taskset -c 6,7 python3 $W/peer.py 127.0.0.1:5673 &
sleep 2
B="--recipe board-a-640 --block 100 --mqtt mqtt://127.0.0.1:1884 --cfx amqp://127.0.0.1:5673/cfx --opcua opc.tcp://127.0.0.1:4841"
# name, cycles, extra arguments: the publishers sharing the cycle's two cores at niceness 19
# (the default) with its A/A control, on a core of their own ([plant] cpus = [2]), and sharing
# at niceness 10 (the default before 2026-11-29).
run() {
  t "$1: $3 --cycles $2"
  timeout $(( $2 / 8 + 60 )) taskset -c 0,1 python3 -m aoi.app.plant.bench $B --cycles $2 $3 \
    > $OUT/$1.json 2> $OUT/$1.err; echo "rc $?"; cat $OUT/$1.json; tail -n 2 $OUT/$1.err
}
ONLY=${3:-shared19,shared19-aa,core2,shared10}  # a comma list of the runs below
want() { [[ ",$ONLY," == *",$1,"* ]]; }
want shared19 && run shared19 $N ""
want shared19-aa && run shared19-aa $NAA "--aa"
want core2 && run core2 $N "--plant-cpus 2"
want shared10 && run shared10 $N "--niceness 10"
t done; date -u
