"""AUROC values the two papers report, keyed by our method names, for side-by-side tables.

`leave_one_class_out`: ADAE Table 1 (MNIST) and Table 2 (CIFAR-10), class = anomaly.
`one_class_normal`: ADGAN Table 1, class = normal; KDE and OC-SVM on PCA features
are `kde`/`ocsvm`, on AlexNet features `kde_alexnet`/`ocsvm_alexnet`.
"""

from __future__ import annotations


def _rows(text: str) -> dict[str, list[float]]:
    rows = {}
    for line in text.strip().splitlines():
        name, *values = line.split()
        rows[name] = [float(v) for v in values]
    return rows


_ADAE_MNIST = _rows("""
anogan    0.610 0.300 0.535 0.440 0.430 0.420 0.475 0.355 0.400 0.335
egbad     0.775 0.290 0.670 0.520 0.450 0.430 0.570 0.400 0.545 0.345
ganomaly  0.880 0.650 0.940 0.780 0.870 0.840 0.830 0.660 0.830 0.520
igmm_gan  0.955 0.900 0.930 0.820 0.830 0.900 0.930 0.900 0.780 0.570
adae      0.951 0.821 0.948 0.889 0.819 0.906 0.889 0.803 0.925 0.631
""")
_ADAE_CIFAR10 = _rows("""
anogan    0.516 0.492 0.411 0.399 0.335 0.393 0.321 0.399 0.567 0.511
egbad     0.577 0.514 0.383 0.448 0.374 0.481 0.353 0.526 0.413 0.555
ganomaly  0.625 0.629 0.505 0.577 0.593 0.633 0.653 0.601 0.622 0.614
adae      0.633 0.729 0.550 0.580 0.496 0.599 0.590 0.610 0.619 0.697
""")
# ADGAN Table 1, one column per method (rows of the paper are classes 0..9).
_ADGAN_COLUMNS = ["kde", "kde_alexnet", "ocsvm", "ocsvm_alexnet", "iforest", "gmm", "dcae", "anogan", "vae", "adgan"]
_ADGAN_MNIST = """
0.982 0.634 0.993 0.962 0.957 0.970 0.988 0.990 0.884 0.999
0.999 0.922 1.000 0.999 1.000 0.999 0.993 0.998 0.998 0.992
0.888 0.654 0.881 0.925 0.822 0.931 0.917 0.888 0.762 0.968
0.898 0.639 0.931 0.950 0.924 0.951 0.885 0.913 0.789 0.953
0.943 0.676 0.962 0.982 0.922 0.968 0.862 0.944 0.858 0.960
0.930 0.651 0.881 0.923 0.859 0.917 0.858 0.912 0.803 0.955
0.972 0.636 0.982 0.975 0.903 0.994 0.954 0.925 0.913 0.980
0.933 0.628 0.951 0.968 0.938 0.938 0.940 0.964 0.897 0.950
0.924 0.617 0.958 0.926 0.814 0.889 0.823 0.883 0.751 0.959
0.940 0.644 0.970 0.969 0.913 0.962 0.965 0.958 0.848 0.965
"""
# As printed. One printed average disagrees with its column: DCAE's CIFAR-10 average is given as 0.583,
# while its ten per-class values average 0.555. Tables show the mean of the per-class values.
_ADGAN_CIFAR10 = """
0.705 0.559 0.653 0.594 0.630 0.709 0.656 0.610 0.582 0.661
0.493 0.487 0.400 0.540 0.379 0.443 0.435 0.565 0.608 0.435
0.734 0.582 0.617 0.588 0.630 0.697 0.381 0.648 0.485 0.636
0.522 0.531 0.522 0.575 0.408 0.445 0.545 0.528 0.667 0.488
0.691 0.651 0.715 0.753 0.764 0.761 0.288 0.670 0.344 0.794
0.439 0.551 0.517 0.558 0.514 0.505 0.643 0.592 0.493 0.640
0.771 0.613 0.727 0.692 0.666 0.766 0.509 0.625 0.391 0.685
0.458 0.593 0.522 0.547 0.480 0.496 0.690 0.576 0.516 0.559
0.595 0.600 0.719 0.630 0.651 0.646 0.698 0.723 0.522 0.798
0.490 0.529 0.475 0.530 0.459 0.384 0.705 0.582 0.633 0.643
"""


def _columns(text: str) -> dict[str, list[float]]:
    by_class = [[float(v) for v in line.split()] for line in text.strip().splitlines()]
    return {name: [row[j] for row in by_class] for j, name in enumerate(_ADGAN_COLUMNS)}


# The embedded MNIST subset is MNIST, so its rows are the MNIST rows.
PAPER_AUROC: dict[tuple[str, str], dict[str, list[float]]] = {
    ("mnist", "leave_one_class_out"): _ADAE_MNIST,
    ("cifar10", "leave_one_class_out"): _ADAE_CIFAR10,
    ("mnist", "one_class_normal"): _columns(_ADGAN_MNIST),
    ("cifar10", "one_class_normal"): _columns(_ADGAN_CIFAR10),
}
PAPER_SOURCE = {"leave_one_class_out": "ADAE (Vu et al. 2019) Tables 1-2",
                "one_class_normal": "ADGAN (Deecke et al. 2018) Table 1"}

# Row order of the papers' tables; our methods that a paper lacks follow these.
TABLE_ORDER = {
    "leave_one_class_out": ["anogan", "egbad", "ganomaly", "igmm_gan", "adae"],
    "one_class_normal": _ADGAN_COLUMNS,
}


def paper_rows(dataset: str, protocol: str) -> dict[str, list[float]]:
    return PAPER_AUROC.get((dataset, protocol), {})
