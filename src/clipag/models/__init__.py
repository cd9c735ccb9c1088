"""Models and the guide: named models (registry), model references -> OpenCLIP models (loading), the
Guide every method uses, memory planning, model folders for the Hub (hub) and downloads."""
