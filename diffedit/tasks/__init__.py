"""Tasks: what a plugin offers the editor (generate, inpaint, restore...), declared without torch."""
