"""The EU battery passport (Regulation (EU) 2023/1542, Art. 77 and Annex XIII) on the Battery
Pass consortium's data model 1.2: documents built from the manufacturer file, the system
configuration and the BMS history, checked against the published schemas, cut to what each
role may see, and the second-life assessment (docs/passport.md).

It never imports device code: the cloud serves it and hands it the stored history.
"""
