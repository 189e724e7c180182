"""Pure Pix code: BR Code build and decode (brcode, validate) and Pix key formats (keys)."""
