"""Using a trained model: photo preprocessing, prediction, the web app."""
