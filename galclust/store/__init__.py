"""Everything that touches files and object storage.

Only this package opens files or URLs; the science code receives arrays and
datasets. URLs may be local paths or ``s3://bucket/prefix`` (through s3fs, with
the endpoint and credentials of the standard AWS environment).
"""
