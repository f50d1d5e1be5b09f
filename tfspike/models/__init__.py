"""Model zoo builders."""
