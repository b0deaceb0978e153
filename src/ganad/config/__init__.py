"""Params: the `params.yaml` schema as pydantic models and its validation (`params`, with its sections in
`executor`, `rank` and `brain`), and its composition from conf/ (`compose`)."""
