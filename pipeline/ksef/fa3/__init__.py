"""FA(3) invoices: the stateless KSeF pre-checks and a sample generator."""
