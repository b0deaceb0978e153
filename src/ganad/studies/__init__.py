"""The studies beyond the image benchmark: ranking folders of images (`ranking`, ADGAN Section 4.4) and brain
MRI tumour detection (`brain`, ADAE Section 4.1)."""
