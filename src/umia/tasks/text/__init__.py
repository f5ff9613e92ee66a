"""tasks/text"""
