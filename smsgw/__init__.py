"""smsgw: an SMS keyword command gateway for social-insurance lookups on short code 8079."""

__version__ = "0.1.0"
