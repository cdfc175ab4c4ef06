"""Studies: grids of trained targets benchmarked to answer one question (`vidsme study ...`).

video_signal   where does the video-slice membership signal live? (docs/FINDINGS.md)
"""
