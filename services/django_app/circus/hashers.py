from django.contrib.auth.hashers import PBKDF2PasswordHasher


class BenchPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """PBKDF2-SHA256 with 10,000 iterations (see PASSWORD_HASHERS in settings for why)."""

    algorithm = "pbkdf2_sha256_bench"
    iterations = 10_000
