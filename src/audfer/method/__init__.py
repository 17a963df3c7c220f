"""The paper's equations on plain tables: video AU labels and pos-weights (Eq. 4, 6-8), knowledge K (§3.1), the AU loss
(Eq. 9-10), and K per source dataset."""
