"""Offline demo data: synthetic brain volumes in the HCP and BraTS layouts (`brain`) and image folders to rank
(`ranking`), so that every study runs without a download."""
