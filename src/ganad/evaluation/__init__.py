"""From scores to results: metrics with their uncertainty (`metrics`), tables and the results page (`tables`),
figures (`figures`), and the papers' published numbers (`papers`, read from papers.yaml)."""
