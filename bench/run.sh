#!/usr/bin/env bash
# The canonical benchmark in one command (what `make bench` runs); options go to `python -m bench`:
#   bench/run.sh                      gateway only: Q1-Q3, 32 connections, 10 s each
#   bench/run.sh --peers issue        also mercurius, PostGraphile, py-sqljson (../shared/peers),
#                                     with the gateway's ratios against each
#   bench/run.sh --queries q1,q2,q3,q5 --workers 1,2   Q5 (10 % postings) and the best worker count
#   bench/run.sh --help               every option
# Env: DATABASE_URL (default postgresql+asyncpg://postgres@127.0.0.1:5432/finance_gateway_bench),
#      PYTHON (default .venv/bin/python of this repository).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
exec "${PYTHON:-$root/.venv/bin/python}" -m bench "$@"
