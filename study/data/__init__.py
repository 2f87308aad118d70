"""Image folders -> decoded, stratified splits; the array cache; held-out folders."""
