"""tasks/image"""
