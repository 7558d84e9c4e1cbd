"""Nothing leaves the machine: no network code in the package, and prediction runs with sockets disabled."""

import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "CSFNetModule" / "CSFNetLib"
NO_SOCKETS = """
import socket, sys
def refuse(*args, **kwargs):
    raise OSError("network access attempted")
socket.socket.connect = socket.socket.connect_ex = socket.socket.sendto = refuse
socket.create_connection = socket.getaddrinfo = refuse
from pathlib import Path
from CSFNetLib.prediction import predict_cohort
done, failed = predict_cohort(Path(sys.argv[1]), Path(sys.argv[2]), clinical_csv=Path(sys.argv[3]), device="cpu")
print(done, failed)
"""


def test_the_package_has_no_network_code():
    pattern = re.compile(r"^\s*(import|from)\s+(socket|urllib|http|requests|ftplib|smtplib)\b", re.M)
    offenders = [p.name for p in PACKAGE.rglob("*.py") if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_prediction_runs_with_networking_disabled(synthetic_cohort, tmp_path):
    done = subprocess.run([sys.executable, "-c", NO_SOCKETS, str(synthetic_cohort / "cases.csv"),
                           str(tmp_path / "results.csv"), str(synthetic_cohort / "clinical.csv")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    predicted, failed = map(int, done.stdout.split()[-2:])
    assert predicted > 0 and failed == 0 and (tmp_path / "results.csv").is_file()
